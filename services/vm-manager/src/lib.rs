//! VM naming, slots, lifecycle and generation IDs: the vm-manager service's logic.
#![no_std]
#![forbid(unsafe_code)]
