//! Architecture-specific code. Only x86-64 exists; all inline assembly lives below here.
pub mod x86_64;
