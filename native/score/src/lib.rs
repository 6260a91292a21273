//! The score step (see workers/steps/ for the Python reference).
