//! SHA-256 with the Armv8 Cryptographic Extension, for verifying partition images at boot and
//! restart: about 20 times fewer instructions than the portable `sha2` code the soft-float
//! hypervisor otherwise uses (a 27 MB Linux kernel is hashed in a fraction of the time).
//!
//! It uses SIMD registers v0-v25, which the rest of the hypervisor never touches
//! (it is built soft-float). It runs only where those registers hold nothing of a guest's: at
//! boot, and when a partition is reloaded on one of its own CPUs (its state is discarded).

use core::arch::global_asm;
use core::sync::atomic::{AtomicU8, Ordering};

use sha2::{Digest, Sha256};

global_asm!(
    r#"
.arch_extension fp
.arch_extension simd
.arch_extension sha2
.section .rodata.sha256_k, "a"
.balign 16
sha256_k:
    .word 0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5
    .word 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174
    .word 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da
    .word 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967
    .word 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85
    .word 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070
    .word 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3
    .word 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2

// Four rounds on message quad \m0 (the next three quads follow) with round constants \k,
// then, while \update, the schedule's next quad in \m0's register.
.macro QUAD m0, m1, m2, m3, k, update
    add     v24.4s, \m0\().4s, \k\().4s
    mov     v25.16b, v0.16b
    sha256h     q0, q1, v24.4s
    sha256h2    q1, q25, v24.4s
    .if \update
    sha256su0   \m0\().4s, \m1\().4s
    sha256su1   \m0\().4s, \m2\().4s, \m3\().4s
    .endif
.endm

.text
// sha256_ce_blocks(state: *mut [u32; 8], data: *const u8, blocks: usize)
// v0-v1 state, v2-v17 the 64 round constants (loaded once, not per block), v18-v21 the
// message, v22-v23 the state at the block's start, v24-v25 scratch.
.global sha256_ce_blocks
sha256_ce_blocks:
    cbz     x2, 2f
    adrp    x3, sha256_k
    add     x3, x3, :lo12:sha256_k
    ld1     {{v2.4s, v3.4s, v4.4s, v5.4s}}, [x3], #64
    ld1     {{v6.4s, v7.4s, v8.4s, v9.4s}}, [x3], #64
    ld1     {{v10.4s, v11.4s, v12.4s, v13.4s}}, [x3], #64
    ld1     {{v14.4s, v15.4s, v16.4s, v17.4s}}, [x3]
    ld1     {{v0.4s, v1.4s}}, [x0]
1:  ld1     {{v18.16b, v19.16b, v20.16b, v21.16b}}, [x1], #64
    rev32   v18.16b, v18.16b
    rev32   v19.16b, v19.16b
    rev32   v20.16b, v20.16b
    rev32   v21.16b, v21.16b
    mov     v22.16b, v0.16b
    mov     v23.16b, v1.16b
    QUAD    v18, v19, v20, v21, v2, 1
    QUAD    v19, v20, v21, v18, v3, 1
    QUAD    v20, v21, v18, v19, v4, 1
    QUAD    v21, v18, v19, v20, v5, 1
    QUAD    v18, v19, v20, v21, v6, 1
    QUAD    v19, v20, v21, v18, v7, 1
    QUAD    v20, v21, v18, v19, v8, 1
    QUAD    v21, v18, v19, v20, v9, 1
    QUAD    v18, v19, v20, v21, v10, 1
    QUAD    v19, v20, v21, v18, v11, 1
    QUAD    v20, v21, v18, v19, v12, 1
    QUAD    v21, v18, v19, v20, v13, 1
    QUAD    v18, v19, v20, v21, v14, 0
    QUAD    v19, v20, v21, v18, v15, 0
    QUAD    v20, v21, v18, v19, v16, 0
    QUAD    v21, v18, v19, v20, v17, 0
    add     v0.4s, v0.4s, v22.4s
    add     v1.4s, v1.4s, v23.4s
    subs    x2, x2, #1
    b.ne    1b
    st1     {{v0.4s, v1.4s}}, [x0]
2:  ret
"#
);

unsafe extern "C" {
    fn sha256_ce_blocks(state: *mut [u32; 8], data: *const u8, blocks: usize);
}

const INITIAL: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

fn blocks(state: &mut [u32; 8], data: &[u8]) {
    // SAFETY: `data` holds `data.len() / 64` whole blocks and `state` eight words; the routine
    // reads and writes nothing else and clobbers only SIMD registers the hypervisor never uses
    // (see the module documentation for when their guest contents may be lost).
    unsafe { sha256_ce_blocks(state, data.as_ptr(), data.len() / 64) };
}

fn digest_ce(data: &[u8]) -> [u8; 32] {
    let mut state = INITIAL;
    let whole = data.len() / 64 * 64;
    blocks(&mut state, &data[..whole]);
    // The tail, the 0x80 byte, zeros and the bit length fill one or two final blocks.
    let rest = &data[whole..];
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let len = if rest.len() < 56 { 64 } else { 128 };
    tail[len - 8..len].copy_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    blocks(&mut state, &tail[..len]);
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

fn has_sha256_instructions() -> bool {
    let isar0: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { core::arch::asm!("mrs {}, id_aa64isar0_el1", out(reg) isar0, options(nomem, nostack)) };
    (isar0 >> 12) & 0xf >= 1
}

/// Whether [`digest`] uses the Cryptographic Extension: [`YES`] once [`choose`] found that it
/// may, else the portable code.
static USE_CE: AtomicU8 = AtomicU8::new(NO);
const NO: u8 = 1;
const YES: u8 = 2;

/// Chooses the code [`digest`] runs, once at boot before any image is verified: the
/// Cryptographic Extension when the CPU has it and it agrees with the portable code on a
/// self-test, else the portable code. Boot-only: the self-test leaves the resident code.
#[unsafe(link_section = ".text.boot_only")]
pub fn choose() {
    // Every padding shape (empty, the longest one-block message, a whole block, the longest
    // two-block one) and the chaining of blocks: 6 blocks of the portable code.
    let sample: [u8; 119] = core::array::from_fn(|i| (i * 7 + 3) as u8);
    let agrees = has_sha256_instructions()
        && [&sample[..0], &sample[..55], &sample[..64], &sample[..]]
            .iter()
            .all(|s| digest_ce(s)[..] == Sha256::digest(s)[..]);
    // Before the secondary CPUs are powered on, which reads it.
    USE_CE.store(if agrees { YES } else { NO }, Ordering::Release);
}

/// SHA-256 of `data`, with the code [`choose`] chose.
pub fn digest(data: &[u8]) -> [u8; 32] {
    if USE_CE.load(Ordering::Acquire) == YES {
        digest_ce(data)
    } else {
        Sha256::digest(data).into()
    }
}
