export async function faults() { return {}; }
