//! System DTS files through `dtc`, `parse` and `validate`:
//! - every `configs/tests/bad/*.dts` fails with the messages its `// expect: ...` lines give;
//! - every `configs/*.dts`, `configs/x86/*.dts`, `configs/tests/*.dts` and `configs/tests/good/*.dts` passes;
//! - every good one warns exactly as its `// warn: ...` lines say (most: not at all);
//! - 100 000 mutated and truncated DTBs never panic or hang `parse_with_warnings` or `validate`.

use std::path::{Path, PathBuf};
use std::process::Command;

use tantalum_core::addr::{GuestPhys, HostPhys, HostRange};
use tantalum_core::config::{
    parse, parse_with_warnings, validate, BuildFacts, Dma, HypervisorMap, StreamRange,
};

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
    // The systems (Arm and x86), the scenario systems and the good test configs.
    let files: Vec<PathBuf> = [dir.clone(), dir.join("tests"), dir.join("tests/good"), dir.join("x86")]
        .iter()
        .flat_map(|d| dts_files(d))
        .collect();
    assert!(files.iter().any(|f| f.ends_with("demo.dts")), "configs/demo.dts not found");
    for file in files {
        let dtb = compile(&file);
        let errors = check(&dtb);
        assert!(errors.is_empty(), "{}:\n{}", file.display(), errors.join("\n"));
        // Exactly the warnings its `// warn: ...` lines give (none for most).
        let source = std::fs::read_to_string(&file).expect("read dts");
        let expected: Vec<&str> =
            source.lines().filter_map(|l| l.strip_prefix("// warn:")).map(str::trim).collect();
        let (_, warnings) = parse_with_warnings(&dtb).expect("parses");
        let warnings: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(warnings, expected, "{}: warnings", file.display());
    }
}

#[test]
fn demo_parses_as_written() {
    let cfg = parse(&compile(&configs_dir().join("demo.dts"))).expect("demo parses");
    assert_eq!(cfg.board.cpus.len(), 4);
    assert_eq!(cfg.board.ram, [HostRange::new(HostPhys(0x4000_0000), 0x4000_0000)]);
    assert_eq!(cfg.board.gic.as_ref().map(|g| g.path.as_str()), Some("/interrupt-controller@8000000"));
    let names: Vec<&str> = cfg.partitions.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["sensor", "controller", "actuator"]);
    assert_eq!(cfg.partitions[1].cpus, [1]);
    assert_eq!(cfg.hypervisor.console.as_ref().map(|c| c.path.as_str()), Some("/pl011@9000000"));
    let channels: Vec<(&str, &[u16], Option<u16>)> =
        cfg.channels.iter().map(|c| (c.name.as_str(), c.endpoints.as_slice(), c.writer)).collect();
    assert_eq!(channels, [("readings", &[0, 1][..], Some(0)), ("commands", &[1, 2][..], Some(1))]);
}

#[test]
fn all_properties_parse_as_written() {
    let cfg = parse(&compile(&configs_dir().join("tests/good/all-properties.dts"))).expect("parses");
    let ping = &cfg.partitions[0];
    let paths: Vec<&str> = ping.devices.iter().map(|d| d.path.as_str()).collect();
    let virtio: Vec<String> = (0..8).map(|i| format!("/virtio_mmio@{:x}", 0xa00_0000 + 0x200 * i)).collect();
    assert_eq!(paths, virtio);
    assert_eq!(ping.devices[1].interrupts[0].intid(), 32 + 17);
    assert!(ping.dma_unconfined);
    assert!(ping.devices.iter().all(|d| d.dma == Dma::Unconfined { iommu: None }));
    assert_eq!(ping.bootargs.as_deref(), Some("console=ttyAMA0 earlycon"));
    assert!(ping.virtual_uart);
    let rtc = &cfg.partitions[1].devices[0];
    assert_eq!((rtc.path.as_str(), rtc.region, rtc.interrupts.len()), ("/pl031@9010000", Some(0), 0));
    assert_eq!(cfg.channels.len(), 2);
    assert_eq!(
        (cfg.channels[1].writer, cfg.channels[1].guest_address(2)),
        (Some(1), Some(GuestPhys(0x5000_0000)))
    );
}

#[test]
fn the_pcie_host_bridge_parses_with_windows_intx_and_streams() {
    let cfg = parse(&compile(&configs_dir().join("tests/good/devices.dts"))).expect("parses");
    assert_eq!(cfg.board.iommus.len(), 1);
    let smmu = &cfg.board.iommus[0];
    assert_eq!(smmu.mmio, HostRange::new(HostPhys(0x905_0000), 0x2_0000));
    assert_eq!(smmu.event_irq.map(|i| i.intid()), Some(32 + 74));
    assert_eq!(smmu.gerror_irq.map(|i| i.intid()), Some(32 + 77));
    assert_eq!(cfg.board.devices.iter().filter(|d| d.path.starts_with("/virtio_mmio@")).count(), 32);
    let pcie = &cfg.partitions[0].devices[0];
    assert_eq!(pcie.path, "/pcie@10000000");
    let mmio = [(0x3f00_0000, 0x100_0000), (0x3eff_0000, 0x1_0000), (0x1000_0000, 0x100_0000)];
    let expected: Vec<HostRange> = mmio.iter().map(|&(b, s)| HostRange::new(HostPhys(b), s)).collect();
    assert_eq!(pcie.mmio, expected);
    let spis: Vec<u32> = pcie.interrupts.iter().map(|i| i.number).collect();
    assert_eq!(spis, [3, 4, 5, 6]);
    assert_eq!(pcie.dma, Dma::Streams { iommu: 0, streams: vec![StreamRange { first: 0, count: 0x1_0000 }] });
    let host = pcie.pci.as_ref().expect("a PCI host bridge");
    assert_eq!(host.buses, (0, 15));
    assert_eq!(host.interrupt_map.len(), 16);
    assert_eq!(host.interrupt_map_mask, [0x1800, 0, 0, 7]);
    assert_eq!(host.windows[0].space, 0x0100_0000);
    assert_eq!(host.windows[1].pci, 0x1000_0000);
    assert!(!cfg.partitions[0].dma_unconfined);
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

/// One token of a structure block, names resolved: what the structure-aware mutator edits.
#[derive(Clone)]
enum Token {
    Begin(String),
    Prop(String, Vec<u8>),
    End,
}

/// The tokens of a `dtc`-written (trusted) blob.
fn decode(dtb: &[u8]) -> Vec<Token> {
    let word = |at: usize| u32::from_be_bytes(dtb[at..at + 4].try_into().expect("4 bytes")) as usize;
    let c_str = |at: usize| {
        let len = dtb[at..].iter().position(|&b| b == 0).expect("NUL");
        String::from_utf8(dtb[at..at + len].to_vec()).expect("UTF-8")
    };
    let (mut pos, strings) = (word(8), word(12));
    let mut tokens = Vec::new();
    loop {
        match word(pos) {
            1 => {
                let name = c_str(pos + 4);
                pos = (pos + 4 + name.len() + 1).next_multiple_of(4);
                tokens.push(Token::Begin(name));
            }
            2 => {
                pos += 4;
                tokens.push(Token::End);
            }
            3 => {
                let (len, name) = (word(pos + 4), c_str(strings + word(pos + 8)));
                tokens.push(Token::Prop(name, dtb[pos + 12..pos + 12 + len].to_vec()));
                pos = (pos + 12 + len).next_multiple_of(4);
            }
            4 => pos += 4,
            _ => return tokens,
        }
    }
}

/// A version-17 blob of `tokens`.
fn encode(tokens: &[Token]) -> Vec<u8> {
    let (mut structs, mut strings) = (Vec::new(), Vec::new());
    let word = |v: &mut Vec<u8>, w: usize| v.extend((w as u32).to_be_bytes());
    for token in tokens {
        match token {
            Token::Begin(name) => {
                word(&mut structs, 1);
                structs.extend(name.as_bytes());
                structs.push(0);
            }
            Token::Prop(name, value) => {
                let (offset, len) = (strings.len(), value.len());
                strings.extend(name.as_bytes());
                strings.push(0);
                word(&mut structs, 3);
                word(&mut structs, len);
                word(&mut structs, offset);
                structs.extend(value);
            }
            Token::End => word(&mut structs, 2),
        }
        structs.resize(structs.len().next_multiple_of(4), 0);
    }
    word(&mut structs, 9);
    let (off_struct, off_strings) = (56, 56 + structs.len());
    let mut blob = Vec::new();
    let header = [0xd00d_feed, off_strings + strings.len(), off_struct, off_strings, 40, 17, 16, 0];
    for w in header.into_iter().chain([strings.len(), structs.len(), 0, 0, 0, 0]) {
        word(&mut blob, w);
    }
    blob.extend(structs);
    blob.extend(strings);
    blob
}

/// Well-formed blobs with hostile contents: values, phandles, names and nodes changed.
fn mutate_structure(rng: &mut Rng, tokens: &mut Vec<Token>) {
    const NAMES: [&str; 16] = [
        "devices",
        "device-regions",
        "endpoints",
        "writer",
        "memory",
        "guest-addresses",
        "interrupts",
        "interrupt-parent",
        "reg",
        "virtual-uart",
        "cpus",
        "#interrupt-cells",
        "#address-cells",
        "#size-cells",
        "interrupt-controller",
        "bootargs",
    ];
    const COMPATIBLES: [&str; 4] =
        ["tantalum,channel-v1", "tantalum,partition-v1", "arm,gic-v3", "virtio,mmio"];
    const WORDS: [u32; 10] = [0, 1, 2, 3, 16, 0x1000, 0x4a00_0000, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];
    let phandles: Vec<u32> = tokens
        .iter()
        .filter_map(|t| match t {
            Token::Prop(n, v) if n == "phandle" && v.len() == 4 => {
                Some(u32::from_be_bytes(v[..4].try_into().ok()?))
            }
            _ => None,
        })
        .collect();
    for _ in 0..1 + rng.below(3) {
        let props: Vec<usize> = (0..tokens.len()).filter(|&i| matches!(tokens[i], Token::Prop(..))).collect();
        let nodes: Vec<usize> = (1..tokens.len()).filter(|&i| matches!(tokens[i], Token::Begin(_))).collect();
        let (Some(&p), Some(&n)) = (props.get(rng.below(props.len())), nodes.get(rng.below(nodes.len())))
        else {
            return;
        };
        let cell = |rng: &mut Rng| match rng.below(3) {
            0 => phandles.get(rng.below(phandles.len())).copied().unwrap_or(1),
            1 => WORDS[rng.below(WORDS.len())],
            _ => rng.next() as u32,
        };
        match rng.below(8) {
            0 => {
                let value: Vec<u8> = (0..rng.below(7)).flat_map(|_| cell(rng).to_be_bytes()).collect();
                if let Token::Prop(_, v) = &mut tokens[p] {
                    *v = value;
                }
            }
            1 => {
                let c = cell(rng).to_be_bytes();
                if let Token::Prop(_, v) = &mut tokens[p] {
                    let at = rng.below(v.len() / 4) * 4;
                    if let Some(slot) = v.get_mut(at..at + 4) {
                        slot.copy_from_slice(&c);
                    }
                }
            }
            2 => drop(tokens.remove(p)),
            3 => {
                // Remove node `n` with its subtree.
                let mut depth = 0usize;
                let end = (n..tokens.len()).find(|&i| {
                    match tokens[i] {
                        Token::Begin(_) => depth += 1,
                        Token::End => depth -= 1,
                        Token::Prop(..) => {}
                    }
                    depth == 0
                });
                if let Some(end) = end {
                    tokens.drain(n..=end);
                }
            }
            4 => {
                let copy = tokens[p].clone();
                tokens.insert(n + 1, copy);
            }
            5 => {
                if let Token::Prop(name, _) = &mut tokens[p] {
                    *name = NAMES[rng.below(NAMES.len())].into();
                }
            }
            6 => {
                let value = format!("{}\0", COMPATIBLES[rng.below(COMPATIBLES.len())]).into_bytes();
                tokens.insert(n + 1, Token::Prop("compatible".into(), value));
            }
            _ => {
                if let Token::Prop(_, v) = &mut tokens[p] {
                    v.truncate(rng.below(v.len() + 1));
                }
            }
        }
    }
}

/// One DTB through everything a booting hypervisor or the build tool does with it.
fn exercise(dtb: &[u8], facts: &BuildFacts) -> (bool, bool) {
    match parse_with_warnings(dtb) {
        Ok((cfg, warnings)) => {
            warnings.iter().for_each(|w| assert!(!w.to_string().is_empty()));
            let result = validate(&cfg, facts);
            result.as_ref().err().into_iter().flatten().for_each(|e| assert!(!e.to_string().is_empty()));
            (true, result.is_ok())
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            errors.iter().for_each(|e| assert!(!e.to_string().is_empty()));
            (false, false)
        }
    }
}

#[test]
fn mutated_dtbs_never_panic() {
    const MUTATIONS: usize = 100_000;
    // Both use channels; all-properties also uses devices, regions and the virtual UART.
    let seeds = [
        compile(&configs_dir().join("demo.dts")),
        compile(&configs_dir().join("tests/good/all-properties.dts")),
    ];
    let facts = [
        BuildFacts::default(),
        BuildFacts {
            boot_image: Some(HostRange::new(HostPhys(0x4008_0000), 0x20_0000)),
            payload_size: Some(0x1_0000),
            map: Some(HypervisorMap {
                devices: HostRange::new(HostPhys(0), 1 << 30),
                ram: HostRange::new(HostPhys(1 << 30), 3 << 30),
            }),
        },
    ];
    // Every truncation of every seed first.
    for seed in &seeds {
        for len in 0..seed.len() {
            exercise(&seed[..len], &facts[len % 2]);
        }
    }
    let trees: Vec<Vec<Token>> = seeds.iter().map(|s| decode(s)).collect();
    assert!(trees.iter().zip(&seeds).all(|(t, s)| parse(&encode(t)) == parse(s)), "encode(decode(x)) == x");
    let mut rng = Rng(0x5eed_7a47_a1b2_c3d4);
    let (mut parsed, mut valid) = (0, 0);
    for i in 0..MUTATIONS {
        // Even iterations: bytes of the blob; odd ones: its tree (values, phandles, names, nodes).
        let mut dtb = if i % 2 == 0 {
            let mut dtb = seeds[(i / 2) % 2].clone();
            mutate(&mut rng, &mut dtb);
            dtb
        } else {
            let mut tokens = trees[(i / 2) % 2].clone();
            mutate_structure(&mut rng, &mut tokens);
            encode(&tokens)
        };
        if i % 16 == 15 {
            let len = rng.below(dtb.len() + 1);
            dtb.truncate(len);
        }
        let (p, v) = exercise(&dtb, &facts[(i / 4) % 2]);
        parsed += usize::from(p);
        valid += usize::from(v);
    }
    // The mutations must reach `validate` often, or this test tests little.
    assert!(parsed > MUTATIONS / 5, "only {parsed} of {MUTATIONS} mutated DTBs parsed");
    eprintln!("{parsed} of {MUTATIONS} mutated DTBs parsed, {valid} validated");
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

#[test]
fn x86_partitions_keep_room_for_the_boot_area() {
    let dtb = compile(&configs_dir().join("x86/x86-two-partitions.dts"));
    let mut cfg = parse(&dtb).expect("parses");
    let region = cfg.partitions[0].memory[0].size;
    let reserve = tantalum_core::config::GUEST_DTB_RESERVE;
    let area = tantalum_core::config::x86::BOOT_AREA;
    // Exactly fitting passes; one byte more is refused with the x86 reason (not rule 7's).
    cfg.partitions[0].image_size_hint = Some(region - reserve - area);
    assert_eq!(validate(&cfg, &BuildFacts::default()), Ok(()));
    cfg.partitions[0].image_size_hint = Some(region - reserve - area + 1);
    let errors: Vec<String> =
        validate(&cfg, &BuildFacts::default()).unwrap_err().iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("less 0x8000 for the x86 boot area"), "{errors:?}");
    // Too big for rule 7 already: only rule 7 speaks.
    cfg.partitions[0].image_size_hint = Some(region);
    let errors = validate(&cfg, &BuildFacts::default()).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(!errors[0].to_string().contains("x86 boot area"));
}
