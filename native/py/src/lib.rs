//! `polaris_native`: the Python extension module over the step crates. Each step's
//! bindings live in their own file and add themselves to the module in `register`.
use pyo3::prelude::*;

// Rust-side allocations only (Python's objects keep Python's allocator).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod chain;
mod entities;
mod miner;
mod parse;
mod redact;
mod score;

#[pymodule]
fn polaris_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    parse::register(m)?;
    redact::register(m)?;
    miner::register(m)?;
    score::register(m)?;
    entities::register(m)?;
    chain::register(m)?;
    Ok(())
}
