//! The CPU the kernels run on: its model, cache sizes and widest vector instructions, read
//! once per process (CPUID on x86-64). The matrix kernels size their packed panels from the
//! L1 data cache found here, and benchmarks print [`Cpu`] beside every figure so that a figure
//! names its machine.
//!
//! ```
//! let cpu = ratchet_agents::cpu::cpu();
//! assert!(cpu.l1d >= 4 * 1024);
//! println!("{cpu}"); // e.g. "AMD EPYC 9R14 (family 25 model 17): L1d 32 KiB, L2 1 MiB, ..."
//! ```

use std::fmt;
use std::sync::OnceLock;

use crate::isa::{Arithmetic, Isa};

/// What the kernels need to know about this CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpu {
    /// The brand string, with family and model numbers where CPUID has them.
    pub model: String,
    /// Bytes of L1 data cache per core.
    pub l1d: usize,
    /// Bytes of L2 cache per core.
    pub l2: usize,
    /// Bytes of L3 cache (shared by several cores); 0 when there is none.
    pub l3: usize,
    /// Whether the cache sizes were read from the CPU (`false`: the defaults below).
    pub caches_detected: bool,
    /// The widest vector instructions the kernels use here: `AVX-512`, `AVX2` or `portable`.
    pub vectors: &'static str,
}

/// Sizes assumed when the CPU does not report its caches: small enough for any current core.
const DEFAULT_L1D: usize = 32 << 10;
const DEFAULT_L2: usize = 512 << 10;

/// This CPU, detected on first use.
pub fn cpu() -> &'static Cpu {
    static CPU: OnceLock<Cpu> = OnceLock::new();
    CPU.get_or_init(detect)
}

fn detect() -> Cpu {
    let vectors = Isa::detect(Arithmetic::Exact).name();
    #[cfg(target_arch = "x86_64")]
    if let Some(cpu) = x86::detect(vectors) {
        return cpu;
    }
    Cpu {
        model: std::env::consts::ARCH.to_string(),
        l1d: DEFAULT_L1D,
        l2: DEFAULT_L2,
        l3: 0,
        caches_detected: false,
        vectors,
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use raw_cpuid::{CacheType, CpuId};

    use super::{Cpu, DEFAULT_L1D, DEFAULT_L2};

    pub(super) fn detect(vectors: &'static str) -> Option<Cpu> {
        let cpuid = CpuId::new();
        let brand = cpuid.get_processor_brand_string()?;
        let mut model = brand.as_str().trim().to_string();
        if let Some(f) = cpuid.get_feature_info() {
            model += &format!(" (family {} model {})", f.family_id(), f.model_id());
        }
        let (mut l1d, mut l2, mut l3) = (None, None, None);
        for cache in cpuid.get_cache_parameters().into_iter().flatten() {
            let bytes = cache.associativity()
                * cache.physical_line_partitions()
                * cache.coherency_line_size()
                * cache.sets();
            match (cache.level(), cache.cache_type()) {
                (1, CacheType::Data | CacheType::Unified) => l1d = Some(bytes),
                (2, _) => l2 = Some(bytes),
                (3, _) => l3 = Some(bytes),
                _ => {}
            }
        }
        Some(Cpu {
            model,
            caches_detected: l1d.is_some() && l2.is_some(),
            l1d: l1d.unwrap_or(DEFAULT_L1D),
            l2: l2.unwrap_or(DEFAULT_L2),
            l3: l3.unwrap_or(0),
            vectors,
        })
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = |bytes: usize| match bytes {
            b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
            b => format!("{} KiB", b >> 10),
        };
        write!(
            f,
            "{}: L1d {}, L2 {}, L3 {}{}, {}",
            self.model,
            size(self.l1d),
            size(self.l2),
            size(self.l3),
            if self.caches_detected {
                ""
            } else {
                " (not reported: assumed)"
            },
            self.vectors
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_model_caches_and_vectors() {
        let zen4 = Cpu {
            model: "AMD EPYC (family 25 model 17)".into(),
            l1d: 32 << 10,
            l2: 1 << 20,
            l3: 32 << 20,
            caches_detected: true,
            vectors: "AVX-512",
        };
        assert_eq!(
            zen4.to_string(),
            "AMD EPYC (family 25 model 17): L1d 32 KiB, L2 1 MiB, L3 32 MiB, AVX-512"
        );
        let unknown = Cpu {
            model: "aarch64".into(),
            l1d: DEFAULT_L1D,
            l2: DEFAULT_L2,
            l3: 0,
            caches_detected: false,
            vectors: "portable",
        };
        assert_eq!(
            unknown.to_string(),
            "aarch64: L1d 32 KiB, L2 512 KiB, L3 0 KiB (not reported: assumed), portable"
        );
    }

    #[test]
    fn this_cpu_reports_plausible_caches() {
        let cpu = cpu();
        assert!(cpu.l1d >= 4 << 10 && cpu.l2 >= cpu.l1d, "{cpu}");
    }
}
