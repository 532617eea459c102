//! What /sys publishes that the agent reads itself: the kernel's BTF.

/// Where the kernel publishes its own BTF (a kernel built with CONFIG_DEBUG_INFO_BTF=y).
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The kernel's raw BTF.
pub fn read_vmlinux_btf() -> std::io::Result<Vec<u8>> {
    std::fs::read(VMLINUX_BTF)
}
