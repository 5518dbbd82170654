//! Rise/fall.
