//! Kernel programs of the TCP flow-control tracer. One file per hook under `probes/`; the agent
//! chooses at start-up which of them to load and attach on the running kernel.
#![no_std]
#![no_main]

mod emit;
mod maps;
mod probes;
mod read;
mod state;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: the verifier rejects any program that could reach a panic, so this is never called.
    unsafe { core::hint::unreachable_unchecked() }
}
