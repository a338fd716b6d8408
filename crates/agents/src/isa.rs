//! Run-time choice of vector instructions for the few loops that dominate a profile.

/// The vector instructions a hot loop is compiled for, detected at run time: the loops are
/// written once and compiled again inside `#[target_feature]` functions, so one binary runs
/// everywhere and uses AVX-512 where the CPU has it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Isa {
    /// Every kind, fastest first.
    const ALL: &[Isa] = &[
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2,
        Isa::Portable,
    ];

    /// Whether this CPU runs code compiled for `self`.
    fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            Isa::Portable => true,
        }
    }

    /// The fastest kind this CPU runs.
    pub(crate) fn detect() -> Self {
        Self::ALL
            .iter()
            .copied()
            .find(|isa| isa.supported())
            .unwrap_or(Isa::Portable)
    }

    /// Every kind this CPU runs, for tests that compare them.
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Self> {
        Self::ALL
            .iter()
            .copied()
            .filter(|isa| isa.supported())
            .collect()
    }
}
