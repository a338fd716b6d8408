//! Run-time choice of vector instructions for the few loops that dominate a profile.
//!
//! The loops are plain Rust (fixed-size blocks the compiler vectorises), compiled again inside
//! `#[target_feature]` functions, so one binary runs everywhere and uses AVX-512 where the CPU
//! has it. An [`Isa`] is the proof that the CPU has an instruction set: only [`Isa::detect`]
//! makes one, so [`Isa::run`] needs no promise from its callers.
//!
//! An `Isa` also carries the [`Arithmetic`] of the matrix products, chosen by the run.

use serde::{Deserialize, Serialize};

/// How the matrix products of the CPU networks add up their terms. Either way every output is
/// its terms added in index order, so a run gives the same bits on every instruction set; the
/// choice is recorded with the version (`[ppo] arithmetic`, `[dqn] arithmetic`) and a version
/// is continued with its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arithmetic {
    /// Each product rounded, then added (the default: the bits of every earlier version).
    #[default]
    Exact,
    /// Fused multiply-adds: one rounding per term. Faster where adds and multiplies share
    /// ports (Intel cores); emulated in software, with the same bits but many times slower, on
    /// a CPU without FMA instructions.
    Fma,
}

impl std::str::FromStr for Arithmetic {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [Arithmetic::Exact, Arithmetic::Fma]
            .into_iter()
            .find(|a| a.name() == text)
            .ok_or_else(|| format!("'{text}' is not an arithmetic: use exact or fma"))
    }
}

/// For `#[serde(skip_serializing_if)]`: exact is what a config without the field means.
pub(crate) fn is_exact(arithmetic: &Arithmetic) -> bool {
    *arithmetic == Arithmetic::Exact
}

impl Arithmetic {
    /// The name configs and `models show` use.
    pub fn name(self) -> &'static str {
        match self {
            Arithmetic::Exact => "exact",
            Arithmetic::Fma => "fma",
        }
    }

    /// Whether this CPU computes it in hardware (`exact` everywhere; `fma` with FMA
    /// instructions).
    pub fn native(self) -> bool {
        match self {
            Arithmetic::Exact => true,
            #[cfg(target_arch = "x86_64")]
            Arithmetic::Fma => std::arch::is_x86_feature_detected!("fma"),
            #[cfg(not(target_arch = "x86_64"))]
            Arithmetic::Fma => false,
        }
    }
}

/// An instruction set this CPU is known to support (a token: it cannot be built by hand), and
/// the arithmetic of the matrix products run with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Isa {
    kind: Kind,
    fma: bool,
}

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

    /// Whether this CPU runs code compiled for `self`, with FMA instructions where `fma`
    /// (AVX-512F includes them).
    fn supported(self, fma: bool) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && (!fma || std::arch::is_x86_feature_detected!("fma"))
            }
            Kind::Portable => true,
        }
    }
}

impl Isa {
    /// The fastest instruction set this CPU runs `arithmetic` with (plain code, where fused
    /// multiply-adds are emulated, when it has no FMA instructions).
    pub(crate) fn detect(arithmetic: Arithmetic) -> Self {
        let fma = arithmetic == Arithmetic::Fma;
        let kind = Kind::ALL.iter().copied().find(|k| k.supported(fma));
        Isa {
            kind: kind.unwrap_or(Kind::Portable),
            fma,
        }
    }

    /// Every instruction set this CPU runs `arithmetic` with, for tests that compare them.
    #[cfg(test)]
    pub(crate) fn available(arithmetic: Arithmetic) -> Vec<Self> {
        let fma = arithmetic == Arithmetic::Fma;
        Kind::ALL
            .iter()
            .copied()
            .filter(|k| k.supported(fma))
            .map(|kind| Isa { kind, fma })
            .collect()
    }

    /// Plain code for any CPU, the reference the tests compare the others with.
    #[cfg(test)]
    pub(crate) fn portable() -> Self {
        Isa {
            kind: Kind::Portable,
            fma: false,
        }
    }

    /// Whether matrix products use fused multiply-adds ([`Arithmetic::Fma`]).
    pub(crate) fn fma(self) -> bool {
        self.fma
    }

    /// The instruction set's name, as [`crate::cpu::Cpu`] reports it.
    pub(crate) fn name(self) -> &'static str {
        match self.kind {
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
        if self.kind == Kind::Avx512 {
            return true;
        }
        false
    }

    /// Runs `f` compiled for this instruction set. `f` must be an `#[inline(always)]` closure
    /// calling `#[inline(always)]` code: only what is inlined into the target-feature function
    /// is compiled for it (a closure left out of line runs as plain x86-64, measured 4x slower).
    #[inline(always)]
    pub(crate) fn run<R>(self, f: impl FnOnce() -> R) -> R {
        match self.kind {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Isa` holding `Avx512` comes only from `detect`, which checked that this
            // CPU has AVX-512F.
            Kind::Avx512 => unsafe { with_avx512(f) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, for AVX2 and, with `fma`, FMA.
            Kind::Avx2 if self.fma => unsafe { with_avx2_fma(f) },
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn with_avx2_fma<R>(f: impl FnOnce() -> R) -> R {
    f()
}
