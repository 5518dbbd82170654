//! Shared by the policy tests: building the example guests and hand-written fixtures.

#![allow(dead_code)]

pub mod fixtures;
pub mod guests;
