export async function exercise() { return {}; }
