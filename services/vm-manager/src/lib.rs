//! VM naming, slots, lifecycle and generation IDs: the vm-manager service's logic.
//!
//! VMs are identified by [`VmName`]. A name that matches a build-time
//! [`StaticVmConfig`] launches that static VM; any other name takes a free
//! dynamic slot while fewer than `MAX_VM_NUM` VMs exist. [`VmManager::handle`]
//! serves the `ipc::vm` protocol; every effect on the kernel and other
//! services goes through the [`Platform`] trait, and generation IDs come
//! from an injected [`EntropySource`]. [`KernelPlatform`] is the platform
//! of the task binary, over the kernel's VM calls and IPC to the other
//! services (both behind traits).
//!
//! Layer: service library (`cargo xtask check-layers`): it owns this service's
//! state machine and depends only on `ipc`; other services are reached over
//! IPC, never linked (only tests may link another service library).
#![no_std]
#![forbid(unsafe_code)]

pub mod board;
pub mod boot_layout;
pub mod config;
pub mod creation;
pub mod ended;
pub mod events;
pub mod genid;
pub mod guest_dt;
pub mod images;
pub mod kernel_calls;
pub mod kernel_platform;
pub mod lifecycle;
pub mod linux_boot;
pub mod linux_image;
pub mod name;
pub mod platform;
#[cfg(feature = "scenario-file")]
pub mod scenario_file;
pub mod service;
pub mod slots;

pub use board::GuestBoard;
pub use config::{DynamicDefaults, MAX_VCPUS, ScenarioError, StaticVmConfig, VmConfig, VmFlags};
pub use genid::{EntropySource, GenerationId};
pub use kernel_platform::{KernelPlatform, KernelVm, ServiceLinks, VmKernel};
pub use lifecycle::{LiveState, Operation};
pub use linux_boot::{Cmdline, LinuxBoot, StaticLinuxBoot};
pub use name::{ImageName, InvalidName, NameProblem, VmName};
pub use platform::{Adopted, AdoptedState, GuestStatus, Platform};
pub use service::{Caller, DEFAULT_MAX_VM_NUM, GuestExit, PreLaunch, Recovery, VmManager};
