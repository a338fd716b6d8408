use super::*;
use ratchet_env::Rng;

#[test]
fn column_sums_add_the_rows_in_order() {
    let mut rng = Rng::seed_from(9);
    for (rows, cols) in [(1, 8), (64, 64), (13, 72), (64, 256)] {
        let m: Vec<f32> = (0..rows * cols).map(|_| rng.normal() as f32).collect();
        let mut want = vec![0.0f32; cols];
        for row in m.chunks_exact(cols) {
            want.iter_mut().zip(row).for_each(|(w, v)| *w += v);
        }
        for isa in Isa::available(Arithmetic::Exact) {
            let mut out = vec![f32::NAN; cols];
            column_sums(isa, Matrix::dense(&m, rows, cols), &mut out);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&out), bits(&want), "{rows}x{cols} {isa:?}");
        }
    }
}

#[test]
fn transposes_every_shape() {
    for (rows, cols) in [(1, 1), (3, 40), (64, 256), (17, 33)] {
        let m: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        for isa in Isa::available(Arithmetic::Exact) {
            let mut out = vec![f32::NAN; cols * (rows + 1)];
            transpose(isa, Matrix::dense(&m, rows, cols), &mut out, rows + 1);
            for i in 0..rows {
                for j in 0..cols {
                    assert_eq!(
                        out[j * (rows + 1) + i],
                        m[i * cols + j],
                        "{rows}x{cols} {isa:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_block_size_gives_the_bits_of_the_plain_loop() {
    let mut rng = Rng::seed_from(3);
    for (rows, depth, cols) in [
        (1, 1, 8),
        (7, 3, 16),
        (64, 64, 64),
        (5, 9, 72),
        (9, 256, 264),
        // `b` read from packed panels: several strips, the last one partial, and a
        // last column block narrower than a register block.
        (64, 256, 256),
        (19, 70, 136),
    ] {
        let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
        let (a, b, init) = (draw(rows * depth), draw(depth * cols), draw(cols));
        let plain_loop = |fma: bool| {
            let mut want = vec![0.0f32; rows * cols];
            for r in 0..rows {
                for j in 0..cols {
                    let mut s = init[j];
                    for k in 0..depth {
                        let (x, w) = (a[r * depth + k], b[k * cols + j]);
                        s = if fma { x.mul_add(w, s) } else { s + x * w };
                    }
                    want[r * cols + j] = s;
                }
            }
            want
        };
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let (exact, fused) = (plain_loop(false), plain_loop(true));
        if depth >= 64 {
            // The two arithmetics are really different ones.
            assert_ne!(bits(&exact), bits(&fused), "{rows}x{depth}x{cols}");
        }
        let isas = [Arithmetic::Exact, Arithmetic::Fma]
            .into_iter()
            .flat_map(|arithmetic| {
                Isa::available(arithmetic)
                    .into_iter()
                    .map(move |i| (arithmetic, i))
            });
        for (arithmetic, isa) in isas {
            let want = match arithmetic {
                Arithmetic::Exact => &exact,
                Arithmetic::Fma => &fused,
            };
            let mut out = vec![f32::NAN; rows * cols];
            let (am, bm) = (
                Matrix::dense(&a, rows, depth),
                Matrix::dense(&b, depth, cols),
            );
            matmul(isa, am, bm, Some(&init), &mut out, cols);
            assert_eq!(bits(&out), bits(want), "{rows}x{depth}x{cols} {isa:?}");
            // Panels for L1 data caches of 12 KiB to 192 KiB.
            for panel_len in [1024, 2560, 4096, 16384] {
                let mut out = vec![f32::NAN; rows * cols];
                let job = Job {
                    panel_len,
                    ..Job::new(am, bm, Some(&init), cols)
                };
                job.run::<false>(isa, &mut out);
                let what = format!("{rows}x{depth}x{cols} {isa:?} panel {panel_len}");
                assert_eq!(bits(&out), bits(want), "{what}");
            }
            for (r, want) in want.chunks_exact(cols).enumerate() {
                let mut out = vec![f32::NAN; cols];
                let x = &a[r * depth..][..depth];
                isa.run(
                    #[inline(always)]
                    || matmul_row(isa, x, bm, &init, &mut out),
                );
                assert_eq!(bits(&out), bits(want), "{depth}x{cols} {isa:?} row {r}");
            }
            let mut at = vec![0.0f32; depth * rows];
            transpose(isa, am, &mut at, rows);
            let mut out = vec![f32::NAN; rows * cols];
            let at = Matrix::dense(&at, depth, rows);
            matmul_transposed(isa, at, bm, Some(&init), &mut out, cols);
            assert_eq!(
                bits(&out),
                bits(want),
                "{rows}x{depth}x{cols} {isa:?} transposed"
            );
        }
    }
}
