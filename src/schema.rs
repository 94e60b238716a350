//! The JSON Schemas of what crosses the boundary, generated from the types
//! themselves (with the rules of [`crate::validate`] written on them), for
//! hosts in other languages and for the test that keeps py_host's pydantic
//! models in step. docs/schemas/ holds them; `just schemas` writes them.

use crate::model::{ProcedureInput, ProcedureOutput};
use schemars::schema_for;

/// The schemas, by file name under docs/schemas/, as pretty JSON text.
pub fn schemas() -> [(&'static str, String); 2] {
    let text = |schema| serde_json::to_string_pretty(&schema).expect("schemas serialize") + "\n";
    [
        (
            "procedure_input.json",
            text(schema_for!(ProcedureInput<'static>)),
        ),
        ("procedure_output.json", text(schema_for!(ProcedureOutput))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn docs_schemas_are_the_types_schemas() {
        let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schemas");
        for (name, schema) in schemas() {
            let written = std::fs::read_to_string(directory.join(name)).unwrap_or_default();
            assert!(
                written == schema,
                "docs/schemas/{name} is not the schema of the Rust types: run `just schemas`"
            );
        }
    }
}
