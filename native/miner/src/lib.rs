//! The miner step (see workers/steps/ for the Python reference).
