//! Run-time choice of vector instructions for the few loops that dominate a profile.
//!
//! The loops are plain Rust (fixed-size blocks the compiler vectorises), compiled again inside
//! `#[target_feature]` functions, so one binary runs everywhere and uses AVX-512 where the CPU
//! has it. An [`Isa`] is the proof that the CPU has an instruction set: only [`Isa::detect`]
//! makes one, so [`Isa::run`] needs no promise from its callers.

/// An instruction set this CPU is known to support (a token: it cannot be built by hand).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Isa(Kind);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Kind {
    /// Every kind, fastest first.
    const ALL: &[Kind] = &[
        #[cfg(target_arch = "x86_64")]
        Kind::Avx512,
        #[cfg(target_arch = "x86_64")]
        Kind::Avx2,
        Kind::Portable,
    ];

    /// Whether this CPU runs code compiled for `self`.
    fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            Kind::Portable => true,
        }
    }
}

impl Isa {
    /// The fastest instruction set this CPU runs.
    pub(crate) fn detect() -> Self {
        let kind = Kind::ALL.iter().copied().find(|k| k.supported());
        Isa(kind.unwrap_or(Kind::Portable))
    }

    /// Every instruction set this CPU runs, for tests that compare them.
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Self> {
        Kind::ALL
            .iter()
            .copied()
            .filter(|k| k.supported())
            .map(Isa)
            .collect()
    }

    /// Plain code for any CPU, the reference the tests compare the others with.
    #[cfg(test)]
    pub(crate) fn portable() -> Self {
        Isa(Kind::Portable)
    }

    /// The instruction set's name, as [`crate::cpu::Cpu`] reports it.
    pub(crate) fn name(self) -> &'static str {
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512 => "AVX-512",
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2 => "AVX2",
            Kind::Portable => "portable",
        }
    }

    /// Whether vectors are 16 floats wide (AVX-512), which sets the block sizes of the matrix
    /// kernels.
    pub(crate) fn wide(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.0 == Kind::Avx512 {
            return true;
        }
        false
    }

    /// Runs `f` compiled for this instruction set. `f` must be an `#[inline(always)]` closure
    /// calling `#[inline(always)]` code: only what is inlined into the target-feature function
    /// is compiled for it (a closure left out of line runs as plain x86-64, measured 4x slower).
    #[inline(always)]
    pub(crate) fn run<R>(self, f: impl FnOnce() -> R) -> R {
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Isa` holding `Avx512` comes only from `detect`, which checked that this
            // CPU has AVX-512F.
            Kind::Avx512 => unsafe { with_avx512(f) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, for AVX2.
            Kind::Avx2 => unsafe { with_avx2(f) },
            Kind::Portable => f(),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}
