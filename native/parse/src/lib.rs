//! The parse step (see workers/steps/ for the Python reference).
