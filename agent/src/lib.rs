//! ipvs-agent library.
