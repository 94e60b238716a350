//! Writes the JSON Schemas of the input and output into the directory given
//! (`just schemas`: docs/schemas/).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let directory = PathBuf::from(std::env::args().nth(1).unwrap_or("docs/schemas".into()));
    std::fs::create_dir_all(&directory)?;
    for (name, schema) in rust_lib::schema::schemas() {
        std::fs::write(directory.join(name), schema)?;
    }
    Ok(())
}
