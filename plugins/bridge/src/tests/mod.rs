//! Unit tests of the bridge logic against fakes: no root, no kernel.

mod add_tests;
mod check_tests;
mod config_tests;
mod fakes;
