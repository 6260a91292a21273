//! The redact step (see workers/steps/ for the Python reference).
