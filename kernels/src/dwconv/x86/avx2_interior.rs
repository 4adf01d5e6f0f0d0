//! The AVX2 depthwise kernels' interior groups in inline assembly: 4 output pixels whose whole
//! window is inside the row, every whole 16-channel tile of the row, one `asm!` block per tile.
//!
//! It computes exactly what `row.rs`'s `group` computes for such a group (`N = 4`, `H = 2`, no
//! mask, no edge), with the same FMAs in the same order per output (bias, then taps in (ky, kx)
//! order), so the results are the same bits; only the instruction stream differs. Written with
//! intrinsics, LLVM forms each window column's address by adding the pixel stride to the one
//! before (a chain of `lea`s): at stride 2 that ran out of general registers and spilled the
//! stride and two taps (`scripts/mca-x86.sh`: 127 loads per 72 FMAs, not 74; llvm-mca znver3
//! 62% of the FMA peak), and at stride 1 its schedule modelled at 72%. Here every address is one
//! base register plus the stride register scaled (`is`, `is3 = 3 is`, `t = base + 4 is`), and
//! both loops model at 82% on znver3 and skylake: the bound of the FP0/FP1 pipes, which run the
//! 72 FMAs and the 16 `vmaxps`/`vminps` of the clamp.
//!
//! Register plan (16 `ymm`):
//!
//! ```text
//!  ymm0 .. ymm7    acc[o][h] = ymm(2o + h)     output o (0..4), vector h (channels 8h .. 8h+8)
//!  ymm8 .. ymm13   tap[kx][h] = ymm(8 + 2kx + h)   the 3 taps of the current kernel row
//!  ymm14, ymm15    x[h] = ymm(14 + h)           the input vector being used
//! ```
//!
//! Per tile: 2 bias loads, per kernel row 6 tap loads and `2 x window` input loads (window 6 at
//! stride 1, 9 at stride 2), each input feeding every output that uses it (up to 3 at stride 1,
//! 2 at stride 2); then the clamp (bounds broadcast into `ymm8`/`ymm9`) and 8 stores. Loads per
//! FMA: 58 / 72 at stride 1, 76 / 72 at stride 2.

use core::arch::asm;

use crate::dwconv::ukernel::DwRow;

/// The six taps of kernel row `ky` (tile offsets `(1 + 3 ky + kx) * 64 + 32 h` bytes) into
/// `ymm8 .. ymm13`, and `t` = the row's window column 4 (`$row + 4 is`).
macro_rules! taps {
    ($row:literal, $d:literal, $d1:literal, $d2:literal, $d3:literal, $d4:literal, $d5:literal) => {
        concat!(
            "vmovups ymm8, ymmword ptr [{w} + ",
            $d,
            "]\n",
            "vmovups ymm9, ymmword ptr [{w} + ",
            $d1,
            "]\n",
            "vmovups ymm10, ymmword ptr [{w} + ",
            $d2,
            "]\n",
            "vmovups ymm11, ymmword ptr [{w} + ",
            $d3,
            "]\n",
            "vmovups ymm12, ymmword ptr [{w} + ",
            $d4,
            "]\n",
            "vmovups ymm13, ymmword ptr [{w} + ",
            $d5,
            "]\n",
            "lea {t}, [",
            $row,
            " + {is}*4]\n",
        )
    };
}

/// One window column, one vector: load `ymm$x` from `[$base$index + $disp]`, then
/// `ymm$acc += ymm$x * ymm$tap` for each output that uses the column.
macro_rules! col {
    ($x:literal, $base:literal, $index:literal, $disp:literal: $($acc:literal $tap:literal),*) => {
        concat!(
            "vmovups ymm", $x, ", ymmword ptr [", $base, $index, " + ", $disp, "]\n",
            $("vfmadd231ps ymm", $acc, ", ymm", $x, ", ymm", $tap, "\n",)*
        )
    };
}

/// Kernel row `ky` at stride 1 (window columns 0 .. 6; column `j` feeds output `o` with tap
/// `kx = j - o`), both vectors of each column back to back.
macro_rules! row_s1 {
    ($row:literal, $($d:literal),*) => {
        concat!(
            taps!($row, $($d),*),
            col!("14", $row, "", "0": "0" "8"),
            col!("15", $row, "", "32": "1" "9"),
            col!("14", $row, " + {is}", "0": "0" "10", "2" "8"),
            col!("15", $row, " + {is}", "32": "1" "11", "3" "9"),
            col!("14", $row, " + {is}*2", "0": "0" "12", "2" "10", "4" "8"),
            col!("15", $row, " + {is}*2", "32": "1" "13", "3" "11", "5" "9"),
            col!("14", $row, " + {is3}", "0": "2" "12", "4" "10", "6" "8"),
            col!("15", $row, " + {is3}", "32": "3" "13", "5" "11", "7" "9"),
            col!("14", $row, " + {is}*4", "0": "4" "12", "6" "10"),
            col!("15", $row, " + {is}*4", "32": "5" "13", "7" "11"),
            col!("14", "{t}", " + {is}", "0": "6" "12"),
            col!("15", "{t}", " + {is}", "32": "7" "13"),
        )
    };
}

/// Kernel row `ky` at stride 2 (window columns 0 .. 9; column `j` feeds output `o` with tap
/// `kx = j - 2o`).
macro_rules! row_s2 {
    ($row:literal, $($d:literal),*) => {
        concat!(
            taps!($row, $($d),*),
            col!("14", $row, "", "0": "0" "8"),
            col!("15", $row, "", "32": "1" "9"),
            col!("14", $row, " + {is}", "0": "0" "10"),
            col!("15", $row, " + {is}", "32": "1" "11"),
            col!("14", $row, " + {is}*2", "0": "0" "12", "2" "8"),
            col!("15", $row, " + {is}*2", "32": "1" "13", "3" "9"),
            col!("14", $row, " + {is3}", "0": "2" "10"),
            col!("15", $row, " + {is3}", "32": "3" "11"),
            col!("14", $row, " + {is}*4", "0": "2" "12", "4" "8"),
            col!("15", $row, " + {is}*4", "32": "3" "13", "5" "9"),
            col!("14", "{t}", " + {is}", "0": "4" "10"),
            col!("15", "{t}", " + {is}", "32": "5" "11"),
            col!("14", "{t}", " + {is}*2", "0": "4" "12", "6" "8"),
            col!("15", "{t}", " + {is}*2", "32": "5" "13", "7" "9"),
            col!("14", "{t}", " + {is3}", "0": "6" "10"),
            col!("15", "{t}", " + {is3}", "32": "7" "11"),
            col!("14", $row, " + {is}*8", "0": "6" "12"),
            col!("15", $row, " + {is}*8", "32": "7" "13"),
        )
    };
}

/// One whole tile of a group: the bias into the 8 accumulators, the three kernel rows
/// (`$row` = `row_s1` or `row_s2`), the clamp and the 8 stores (`t` = output 2 for output 3).
macro_rules! tile {
    ($row:ident) => {
        concat!(
            "vmovups ymm14, ymmword ptr [{w}]\n",
            "vmovups ymm15, ymmword ptr [{w} + 32]\n",
            "vmovaps ymm0, ymm14\n",
            "vmovaps ymm1, ymm15\n",
            "vmovaps ymm2, ymm14\n",
            "vmovaps ymm3, ymm15\n",
            "vmovaps ymm4, ymm14\n",
            "vmovaps ymm5, ymm15\n",
            "vmovaps ymm6, ymm14\n",
            "vmovaps ymm7, ymm15\n",
            $row!("{x0}", "64", "96", "128", "160", "192", "224"),
            $row!("{x1}", "256", "288", "320", "352", "384", "416"),
            $row!("{x2}", "448", "480", "512", "544", "576", "608"),
            "vbroadcastss ymm8, dword ptr [{mm}]\n",
            "vbroadcastss ymm9, dword ptr [{mm} + 4]\n",
            "lea {t}, [{o} + {os}*2]\n",
            clamp_store!("0", "{o}", "", "0"),
            clamp_store!("1", "{o}", "", "32"),
            clamp_store!("2", "{o}", " + {os}", "0"),
            clamp_store!("3", "{o}", " + {os}", "32"),
            clamp_store!("4", "{o}", " + {os}*2", "0"),
            clamp_store!("5", "{o}", " + {os}*2", "32"),
            clamp_store!("6", "{t}", " + {os}", "0"),
            clamp_store!("7", "{t}", " + {os}", "32"),
        )
    };
}

/// `ymm$r = min(max, max(min, ymm$r))` with `ymm$r` the second operand of both (x86 returns the
/// second operand when either is NaN: a NaN stays NaN), stored at `[$base$index + $disp]`.
macro_rules! clamp_store {
    ($r:literal, $base:literal, $index:literal, $disp:literal) => {
        concat!(
            "vmaxps ymm",
            $r,
            ", ymm8, ymm",
            $r,
            "\n",
            "vminps ymm",
            $r,
            ", ymm9, ymm",
            $r,
            "\n",
            "vmovups ymmword ptr [",
            $base,
            $index,
            " + ",
            $disp,
            "], ymm",
            $r,
            "\n",
        )
    };
}

/// Channel tiles `0 .. tiles` (16 channels each) of the 4 output pixels `ox .. ox + 4`, whose
/// input window starts at column `c0 >= 0` and lies inside the row, at stride `S` (1 or 2).
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 16` and stride `S`; the CPU has AVX2 (this inlines into
/// the AVX2 kernels' `#[target_feature]` function); `ox + 4 <= out_width`, columns `c0 .. c0 +
/// 3S + 3` are inside `0 .. in_width`; `16 * tiles <= channels`.
#[inline(always)]
pub(super) unsafe fn interior_group4<const S: usize>(
    r: &DwRow,
    ox: usize,
    c0: usize,
    tiles: usize,
) {
    let (is, os) = (r.in_stride * 4, r.out_stride * 4);
    let bounds = [r.min, r.max];
    let mm = bounds.as_ptr();
    let x = r
        .rows
        .map(|row| row.wrapping_add(c0 * r.in_stride) as usize);
    let out = r.out.wrapping_add(ox * r.out_stride) as usize;
    for tile in 0..tiles {
        let (w, ch) = (r.weights.wrapping_add(tile * 160) as usize, tile * 64);
        // One iteration of the interior loop, for llvm-mca (scripts/mca-x86.sh).
        #[cfg(feature = "mca-markers")]
        if S == 1 {
            mca_marker!("BEGIN dwconv3x3_f32_c16_avx2");
        } else {
            mca_marker!("BEGIN dwconv3x3s2_f32_c16_avx2");
        }
        // SAFETY: AVX2 is available (the caller's contract). The block reads the packed tile at
        // `w` (bias and 9 taps, 640 bytes, tile `< ceil(channels / 16)`), the two bounds, and
        // channels `16 tile .. 16 tile + 16 <= channels` of input columns `c0 .. c0 + 3S + 3`
        // (`x + j * is`, `j` below the window) of the three rows: all readable by the `DwRowFn`
        // contract, as the window is inside the row; it writes those channels of output pixels
        // `ox .. ox + 4 <= out_width` (`out + o * os`), writable by the contract and not
        // aliasing the inputs, and only the registers it names. No stack, no flags.
        unsafe {
            if S == 1 {
                asm!(
                    tile!(row_s1),
                    w = in(reg) w,
                    x0 = in(reg) x[0] + ch,
                    x1 = in(reg) x[1] + ch,
                    x2 = in(reg) x[2] + ch,
                    is = in(reg) is,
                    is3 = in(reg) 3 * is,
                    t = out(reg) _,
                    o = in(reg) out + ch,
                    os = in(reg) os,
                    mm = in(reg) mm,
                    out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
                    out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
                    out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                    out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                    options(nostack, preserves_flags),
                );
            } else {
                asm!(
                    tile!(row_s2),
                    w = in(reg) w,
                    x0 = in(reg) x[0] + ch,
                    x1 = in(reg) x[1] + ch,
                    x2 = in(reg) x[2] + ch,
                    is = in(reg) is,
                    is3 = in(reg) 3 * is,
                    t = out(reg) _,
                    o = in(reg) out + ch,
                    os = in(reg) os,
                    mm = in(reg) mm,
                    out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
                    out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
                    out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                    out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                    options(nostack, preserves_flags),
                );
            }
        }
        #[cfg(feature = "mca-markers")]
        if S == 1 {
            mca_marker!("END dwconv3x3_f32_c16_avx2");
        } else {
            mca_marker!("END dwconv3x3s2_f32_c16_avx2");
        }
    }
}
