//! System DTS files through `dtc`, `parse` and `validate`:
//! - every `configs/tests/bad/*.dts` fails with the messages its `// expect: ...` lines give;
//! - every `configs/*.dts` and `configs/tests/good/*.dts` passes;
//! - mutated and truncated DTBs never panic `parse` or `validate`.

use std::path::{Path, PathBuf};
use std::process::Command;

use tantalum_core::addr::{HostPhys, HostRange};
use tantalum_core::config::{parse, validate, BuildFacts};

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

fn dts_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("read_dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "dts"))
        .collect();
    files.sort();
    files
}

fn compile(dts: &Path) -> Vec<u8> {
    let output = match Command::new("dtc").args(["-q", "-I", "dts", "-O", "dtb"]).arg(dts).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`dtc` not found: install the device tree compiler \
             (`apt-get install device-tree-compiler`; `cargo xtask` installs it)"
        ),
        Err(e) => panic!("running dtc on {}: {e}", dts.display()),
    };
    assert!(
        output.status.success(),
        "dtc failed on {}:\n{}",
        dts.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Every error message, from `parse` or else from `validate` (no build facts).
fn check(dtb: &[u8]) -> Vec<String> {
    let result = parse(dtb).and_then(|cfg| validate(&cfg, &BuildFacts::default()));
    result.err().unwrap_or_default().iter().map(ToString::to_string).collect()
}

#[test]
fn bad_configs_fail_with_the_expected_messages() {
    let files = dts_files(&configs_dir().join("tests/bad"));
    assert!(files.len() >= 15, "expected at least 15 bad configs, found {}", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("read dts");
        let expects: Vec<&str> =
            source.lines().filter_map(|l| l.strip_prefix("// expect:")).map(str::trim).collect();
        assert!(!expects.is_empty(), "{} has no `// expect:` line", file.display());
        let errors = check(&compile(file)).join("\n");
        for expect in expects {
            if !errors.contains(expect) {
                failures.push(format!(
                    "{}:\n  expected: {expect}\n  got:\n    {}",
                    file.display(),
                    if errors.is_empty() { "(no errors)".into() } else { errors.replace('\n', "\n    ") }
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn good_configs_pass() {
    let dir = configs_dir();
    let files: Vec<PathBuf> = dts_files(&dir).into_iter().chain(dts_files(&dir.join("tests/good"))).collect();
    assert!(files.iter().any(|f| f.ends_with("demo.dts")), "configs/demo.dts not found");
    for file in files {
        let errors = check(&compile(&file));
        assert!(errors.is_empty(), "{}:\n{}", file.display(), errors.join("\n"));
    }
}

#[test]
fn demo_parses_as_written() {
    let cfg = parse(&compile(&configs_dir().join("demo.dts"))).expect("demo parses");
    assert_eq!(cfg.board.cpus.len(), 4);
    assert_eq!(cfg.board.ram, [HostRange::new(HostPhys(0x4000_0000), 0x4000_0000)]);
    let names: Vec<&str> = cfg.partitions.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["ping", "pong"]);
    assert_eq!(cfg.partitions[1].cpus, [1]);
    assert_eq!(cfg.hypervisor.console.as_ref().map(|c| c.path.as_str()), Some("/pl011@9000000"));
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, dtb: &mut Vec<u8>) {
    const WORDS: [u32; 12] =
        [0, 1, 2, 3, 4, 9, 0x10, 0x1000, 0x7fff_ffff, 0x8000_0000, 0xffff_fff0, 0xffff_ffff];
    for _ in 0..1 + rng.below(3) {
        if dtb.is_empty() {
            return;
        }
        let at = rng.below(dtb.len());
        match rng.below(8) {
            0 => dtb[at] ^= 1 << rng.below(8),
            1 => dtb[at] = rng.next() as u8,
            2 | 3 => {
                // An interesting word at a 4-byte boundary: tokens, lengths and cells.
                let at = at & !3;
                let word = if rng.below(4) == 0 { rng.next() as u32 } else { WORDS[rng.below(12)] };
                for (i, b) in word.to_be_bytes().into_iter().enumerate() {
                    if let Some(slot) = dtb.get_mut(at + i) {
                        *slot = b;
                    }
                }
            }
            4 => dtb.truncate(at),
            5 => {
                let end = (at + rng.below(64)).min(dtb.len());
                dtb.drain(at..end);
            }
            6 => {
                let end = (at + rng.below(64)).min(dtb.len());
                let chunk = dtb[at..end].to_vec();
                let to = rng.below(dtb.len());
                dtb.splice(to..to, chunk);
            }
            _ => {
                // A header field (size, offsets, version).
                let field = 4 * (1 + rng.below(9));
                let word = WORDS[rng.below(12)].wrapping_add(rng.below(3) as u32);
                if let Some(slot) = dtb.get_mut(field..field + 4) {
                    slot.copy_from_slice(&word.to_be_bytes());
                }
            }
        }
    }
}

#[test]
fn mutated_dtbs_never_panic() {
    let demo = compile(&configs_dir().join("demo.dts"));
    let good = compile(&configs_dir().join("tests/good/all-properties.dts"));
    let facts = [
        BuildFacts::default(),
        BuildFacts {
            boot_image: Some(HostRange::new(HostPhys(0x4008_0000), 0x20_0000)),
            payload_size: Some(0x1_0000),
        },
    ];
    let mut rng = Rng(0x5eed_7a47_a1b2_c3d4);
    let (mut parsed, mut valid) = (0, 0);
    for i in 0..20_000 {
        let mut dtb = if i % 2 == 0 { demo.clone() } else { good.clone() };
        mutate(&mut rng, &mut dtb);
        if let Ok(cfg) = parse(&dtb) {
            parsed += 1;
            valid += usize::from(validate(&cfg, &facts[i % 2]).is_ok());
        }
    }
    // The mutations must reach `validate` often, or this test tests little.
    assert!(parsed > 2_000, "only {parsed} of 20000 mutated DTBs parsed");
    eprintln!("{parsed} mutated DTBs parsed, {valid} validated");
}

#[test]
#[ignore]
fn print_all() {
    for file in dts_files(&configs_dir().join("tests/bad")) {
        println!("== {}", file.display());
        for e in check(&compile(&file)) {
            println!("   {e}");
        }
    }
}
