//! The aarch64 hypervisor's boot-only code: the pages `link.ld` sets apart (the configuration's
//! parser and rules, building the system) and EL2 unmaps once the partitions are started. After
//! every build this checks, on the linked ELF, that nothing else refers to them: no branch or
//! address computed by other code lands there, and no table in the image data that other code
//! uses holds a pointer there. A reference the check misses would fault at run time (the pages
//! are unmapped), never run stale code.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::process::Command;

use crate::{bail, tools, Error, Result};

/// Code outside the boot-only pages that may refer to them: the CPUs' entry assembly, which
/// calls `primary_main` or `secondary_main` once and never comes back to that call. Only the
/// boot CPU powers CPUs on, before it retires the boot-only code, and it retires it only once
/// every CPU it powered on has left `secondary_main` (arch-aarch64/src/main.rs,
/// `secondaries_started`).
const MAY_ENTER: &[&str] = &["primary_entry", "secondary_entry"];

/// Functions outside the boot-only code that boot-only code calls and that go on running after
/// boot: each CPU's last step out of it (`boot_done` on the boot CPU, which retires the
/// boot-only code, `secondary_ready` on the others), which then runs the CPU's vCPUs.
const RUNS_AFTER_BOOT: &[&str] = &["boot_done", "secondary_ready"];

/// How far past the start of a table (a vtable, an array of function pointers) that code
/// addresses a pointer in it may lie.
const TABLE_REACH: u64 = 256;

/// The sizes the check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// The whole `.text`, boot-only pages included.
    pub text: u64,
    /// The boot-only pages (their alignment padding included).
    pub boot_only: u64,
}

impl Split {
    /// The code that stays mapped while partitions run.
    pub fn resident(&self) -> u64 {
        self.text - self.boot_only
    }
}

/// What [`check`] found in a hypervisor that passed.
pub struct Checked {
    pub split: Split,
    /// The input sections (`.text.<mangled name>`) of the functions outside the boot-only
    /// pages that only boot-only code runs: the linker may put them there too
    /// ([`BOOT_SECTIONS_ENV`]).
    pub boot_only_elsewhere: Vec<String>,
    /// Every function's input section name, as above.
    pub sections: std::collections::BTreeSet<String>,
}

/// Names a file of input sections that `arch-aarch64/build.rs` adds to the boot-only pages,
/// one per line: what [`check`] found that only boot-only code runs (the compiler's
/// instances of generic code for the parser, helpers only the system's construction calls).
pub const BOOT_SECTIONS_ENV: &str = "TANTALUM_BOOT_SECTIONS";

/// Builds the hypervisor with `build` and checks the ELF it writes at `elf`; then, while the
/// check finds functions that only boot-only code runs and that `sections` (the list
/// [`BOOT_SECTIONS_ENV`] names) lacks, adds them and builds again (the same code, so the same
/// names; one round so far, three at most). A name the list has already is one the linker
/// cannot move: no rebuild for it. Names of an older build's functions (other hashes) are
/// dropped, and if the check fails with a list, the list starts again: a function an older
/// build found only boot code running may be live now (its name stays when its body changes).
pub fn build_checked(elf: &Path, sections: &Path, build: impl Fn() -> Result<()>) -> Result<Checked> {
    // The build script reads the list: it exists before the first build.
    if !sections.exists() {
        if let Some(dir) = sections.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(sections, "")?;
    }
    build()?;
    let mut checked = check(elf);
    if checked.is_err() && !std::fs::read_to_string(sections)?.trim().is_empty() {
        std::fs::write(sections, "")?;
        build()?;
        checked = check(elf);
    }
    let mut checked = checked?;
    for _ in 0..3 {
        let old = std::fs::read_to_string(sections)?;
        if checked.boot_only_elsewhere.iter().all(|name| old.lines().any(|l| l == name)) {
            break;
        }
        let current = old.lines().filter(|l| checked.sections.contains(*l));
        let mut names: Vec<&str> =
            current.chain(checked.boot_only_elsewhere.iter().map(String::as_str)).collect();
        names.sort_unstable();
        names.dedup();
        std::fs::write(sections, names.join("\n") + "\n")?;
        build()?;
        checked = check(elf)?;
    }
    Ok(checked)
}

/// The aarch64 hypervisor's sources: [`lasting_trait_objects`] reads them.
const HYPERVISOR_SOURCES: &[&str] = &["arch-aarch64/src", "core/src", "core-config/src"];

/// Trait objects that can outlive the code that made them (`Box<dyn`, `Arc<dyn`, `Rc<dyn`,
/// `&'static dyn`, `&'static mut dyn`) in the hypervisor's sources under `root`, as
/// `file:line: text`; tests (`tests.rs`, and a file from its `#[cfg(test)]` on) are skipped.
/// The check follows a vtable's methods from the code that addresses the vtable; a trait object
/// made at boot and kept on the heap for later would be called through a vtable no code
/// running then addresses. With only borrowed trait objects, which live no longer than the
/// frame of the code that made them, that cannot happen (a `&'static dyn` in a static is
/// followed: the static points to its vtable).
pub fn lasting_trait_objects(root: &Path) -> Result<Vec<String>> {
    const LASTING: &[&str] = &["Box<dyn", "Arc<dyn", "Rc<dyn", "'static dyn", "'static mut dyn"];
    let mut found = Vec::new();
    let mut dirs: Vec<std::path::PathBuf> = HYPERVISOR_SOURCES.iter().map(|d| root.join(d)).collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.file_name().is_some_and(|n| n == "tests.rs")
            {
                continue;
            }
            let text = std::fs::read_to_string(&path)?;
            for (n, line) in text.lines().enumerate().take_while(|(_, l)| l.trim() != "#[cfg(test)]") {
                let code = line.split("//").next().unwrap_or("");
                if LASTING.iter().any(|p| code.contains(p)) {
                    let file = path.strip_prefix(root).unwrap_or(&path).display();
                    found.push(format!("{file}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Checks the hypervisor ELF at `elf`; returns its code's split and what else could move to
/// the boot-only pages, or every reference found.
pub fn check(elf: &Path) -> Result<Checked> {
    let lasting = lasting_trait_objects(&crate::root())?;
    if !lasting.is_empty() {
        bail!(
            "a trait object that outlives the code that made it, which the build's check of the boot-only \
             code cannot follow (xtask/src/boot_code.rs, `lasting_trait_objects`; use a generic or an enum):\n  {}",
            lasting.join("\n  ")
        );
    }
    let fail = |what: String| Error(format!("{}: {what}", elf.display()));
    let bytes = std::fs::read(elf).map_err(|e| fail(e.to_string()))?;
    let image = Elf::parse(&bytes).ok_or_else(|| fail("not a 64-bit little-endian ELF".into()))?;
    let symbol = |name: &str| {
        image.symbols.get(name).copied().ok_or_else(|| fail(format!("no symbol {name} (link.ld)")))
    };
    let boot = symbol("__boot_text_start")?..symbol("__boot_text_end")?;
    let text = image.sections.iter().find(|s| s.name == ".text").ok_or_else(|| fail("no .text".into()))?;
    let out = Command::new(tools::llvm_tool("llvm-objdump")?)
        .args(["-d", "-C", "--no-show-raw-insn", "-j", ".text"])
        .arg(elf)
        .output()?;
    if !out.status.success() {
        bail!("llvm-objdump {} failed: {}", elf.display(), String::from_utf8_lossy(&out.stderr));
    }
    let listing = references(&String::from_utf8_lossy(&out.stdout));
    let data: Vec<(u64, &[u8])> = image
        .sections
        .iter()
        .filter(|s| s.alloc && !s.exec && s.name != ".bss")
        .map(|s| (s.addr, &s.data[..]))
        .collect();
    let text_range = text.addr..text.addr + text.data.len() as u64;
    let (found, idle) = violations(&listing, &text_range, &text.data, &boot, &data);
    if std::env::var_os("TANTALUM_BOOT_CODE_REPORT").is_some() {
        // Code outside the boot-only pages that only boot-only code runs: what could move
        // there next (sizes to the next function).
        let mut sizes: Vec<(u64, &str)> = idle
            .iter()
            .map(|&(at, name)| {
                let end = listing.functions.range(at + 1..).next().map_or(text_range.end, |(&next, _)| next);
                (end - at, name)
            })
            .collect();
        sizes.sort();
        for (size, name) in &sizes {
            println!("{size:>8}  {name}");
        }
        println!(
            "{:>8}  in {} functions outside the boot-only pages that only boot code runs",
            sizes.iter().map(|s| s.0).sum::<u64>(),
            sizes.len()
        );
    }
    if !found.is_empty() {
        bail!(
            "{}: code that runs after boot refers to boot-only code, whose pages are unmapped then \
             (arch-aarch64/link.ld; move the callee out of the boot-only code, or keep the caller to boot):\n  {}",
            elf.display(),
            found.join("\n  ")
        );
    }
    let split = Split { text: text.data.len() as u64, boot_only: boot.end - boot.start };
    let boot_only_elsewhere = idle
        .iter()
        .filter_map(|(at, _)| image.functions.get(at))
        .map(|name| format!(".text.{name}"))
        .collect();
    let sections = image.functions.values().map(|name| format!(".text.{name}")).collect();
    Ok(Checked { split, boot_only_elsewhere, sections })
}

/// One reference in the disassembly: the instruction at `at`, in `function`, to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    at: u64,
    function: String,
    to: u64,
    /// A branch (a call or a jump), not an address computed or loaded.
    branch: bool,
    /// The page an `adrp` computes, before the `add` or load that says where in it: counted
    /// against code that runs after boot when it lies in the boot-only pages, but not as a
    /// reference to whatever function it happens to fall in.
    page: bool,
}

/// Every address the code refers to: branch targets, `adr` and `adrp`+`add`/`ldr`/`str`
/// addresses (the page from `adrp`, tracked per register within a function).
fn references(disassembly: &str) -> Listing {
    let mut refs = Vec::new();
    let mut functions = BTreeMap::new();
    let mut function = String::new();
    let mut pages: BTreeMap<String, u64> = BTreeMap::new();
    for line in disassembly.lines() {
        // A label: `0000000040080000 <_start>:`.
        if let Some((at, name)) = line.strip_suffix(">:").and_then(|l| l.split_once(" <")) {
            function = name.to_string();
            if let Ok(at) = u64::from_str_radix(at, 16) {
                functions.insert(at, function.clone());
            }
            pages.clear();
            continue;
        }
        let Some((at, rest)) = line.split_once(':') else { continue };
        let Ok(at) = u64::from_str_radix(at.trim(), 16) else { continue };
        let mut words = rest.split_whitespace();
        let Some(mnemonic) = words.next() else { continue };
        let operands: Vec<&str> = rest
            .split_once(mnemonic)
            .map_or("", |(_, o)| o)
            .split("//")
            .next()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .collect();
        let hex = |s: &str| {
            s.split_whitespace()
                .next()
                .and_then(|w| w.strip_prefix("0x"))
                .and_then(|h| u64::from_str_radix(h, 16).ok())
        };
        let imm = |s: &str| {
            s.trim_start_matches('#')
                .trim_end_matches(']')
                .strip_prefix("0x")
                .and_then(|h| u64::from_str_radix(h, 16).ok())
        };
        let mut push =
            |to: u64| refs.push(Reference { at, function: function.clone(), to, branch: false, page: false });
        match mnemonic {
            "adrp" => {
                if let (Some(reg), Some(page)) = (operands.first(), operands.get(1).and_then(|o| hex(o))) {
                    pages.insert(reg.to_string(), page);
                    refs.push(Reference {
                        at,
                        function: function.clone(),
                        to: page,
                        branch: false,
                        page: true,
                    });
                }
            }
            "adr" => {
                if let Some(to) = operands.get(1).and_then(|o| hex(o)) {
                    push(to);
                }
            }
            "add" => {
                if let (Some(&page), Some(offset)) =
                    (operands.get(1).and_then(|r| pages.get(*r)), operands.get(2).and_then(|o| imm(o)))
                {
                    push(page + offset);
                }
            }
            m if m.starts_with("ldr")
                || m.starts_with("str")
                || m.starts_with("ldp")
                || m.starts_with("stp") =>
            {
                // `[xN, #imm]` (or `[xN]`): its base register and offset.
                if let Some(i) = operands.iter().position(|o| o.starts_with('[')) {
                    let base = operands[i].trim_start_matches('[').trim_end_matches(']');
                    let offset =
                        operands.get(i + 1).filter(|o| o.ends_with(']')).and_then(|o| imm(o)).unwrap_or(0);
                    if let Some(&page) = pages.get(base) {
                        push(page + offset);
                    }
                } else if let Some(to) = operands.last().and_then(|o| hex(o)) {
                    push(to); // a literal load
                }
            }
            m if m == "b"
                || m == "bl"
                || m.starts_with("b.")
                || m.starts_with("cb")
                || m.starts_with("tb") =>
            {
                if let Some(to) = operands.last().and_then(|o| hex(o)) {
                    refs.push(Reference { at, function: function.clone(), to, branch: true, page: false });
                }
            }
            _ => {}
        }
        // Whatever an instruction writes to, but `adrp` itself, no longer holds a page.
        if mnemonic != "adrp" {
            if let Some(dest) = operands.first() {
                pages.remove(*dest);
            }
        }
    }
    Listing { functions, refs }
}

/// A disassembly's functions (by start address) and references.
struct Listing {
    functions: BTreeMap<u64, String>,
    refs: Vec<Reference>,
}

/// The references that can run after boot into `boot`, directly or through a pointer in
/// `data` (sections as (address, bytes)), and the functions outside `boot` that cannot run
/// after boot. Code that runs after boot ("live") is found from the roots, every function
/// outside `boot` that may be called from anywhere: those no code branches to (entry points,
/// the vectors), those whose address code takes or data holds (called through a pointer,
/// maybe later: `secondary_entry`, a vtable's methods), and [`RUNS_AFTER_BOOT`]; then every
/// function outside `boot` that live code refers to, and so on. A function outside `boot`
/// that only boot-only code calls (an iterator adapter the parser instantiated) is not live,
/// and may refer to boot-only code. [`MAY_ENTER`] may too.
fn violations<'a>(
    listing: &'a Listing,
    text: &Range<u64>,
    text_bytes: &[u8],
    boot: &Range<u64>,
    data: &[(u64, &[u8])],
) -> (Vec<String>, Vec<(u64, &'a str)>) {
    let refs = &listing.refs;
    // Each function's references, and the function an address lies in.
    let mut from: BTreeMap<&str, Vec<&Reference>> = BTreeMap::new();
    for r in refs {
        from.entry(r.function.as_str()).or_default().push(r);
    }
    let owner = |address: u64| {
        text.contains(&address)
            .then(|| listing.functions.range(..=address).next_back().map(|(_, n)| n.as_str()))
            .flatten()
    };
    // Functions some code branches to from outside itself, and functions whose address is
    // taken by code or held by data.
    let mut called = std::collections::BTreeSet::new();
    let mut pointed = std::collections::BTreeSet::new();
    for r in refs {
        match owner(r.to) {
            Some(callee) if r.branch && callee != r.function => {
                called.insert(callee);
            }
            // A formatting method whose address code takes runs only while that code does:
            // as if called from there.
            Some(callee) if !r.branch && !r.page && is_formatting_method(callee) && callee != r.function => {
                called.insert(callee);
            }
            Some(callee) if !r.branch && !r.page && listing.functions.contains_key(&r.to) => {
                pointed.insert(callee);
            }
            _ => {}
        }
    }
    // Words in the code (the assembly's literals) that hold a function's address.
    for word in text_bytes.chunks_exact(8) {
        if let Some(name) = listing.functions.get(&u64::from_le_bytes(word.try_into().expect("8 bytes"))) {
            pointed.insert(name.as_str());
        }
    }
    // Words in the data that hold a function's address (a vtable's methods) or a table's (a
    // `&'static dyn` in a static points to its vtable). Such a word belongs to the table that
    // starts closest before it, at most `TABLE_REACH` (an address code computes or data
    // holds): as for the pointers into the boot-only code below. A table is reached when code
    // that runs after boot addresses it, or a word in a reached table points to it; the
    // methods a reached vtable holds then run after boot. A word with no table that close is
    // reached from the start (its function is a root). Sound while no trait object outlives
    // the code that made it ([`lasting_trait_objects`]).
    let in_data =
        |a: u64| data.iter().any(|&(start, bytes)| (start..start + bytes.len() as u64).contains(&a));
    let code_targets: std::collections::BTreeSet<u64> =
        refs.iter().filter(|r| !r.branch && !r.page).map(|r| r.to).collect();
    fn words<'d>(&(start, bytes): &(u64, &'d [u8])) -> impl Iterator<Item = (u64, u64)> + 'd {
        bytes
            .chunks_exact(8)
            .enumerate()
            .map(move |(i, w)| (start + 8 * i as u64, u64::from_le_bytes(w.try_into().expect("8 bytes"))))
    }
    let pointers: Vec<(u64, u64)> = data
        .iter()
        .flat_map(words)
        .filter(|&(_, value)| listing.functions.contains_key(&value) || in_data(value))
        .collect();
    let mut tables: std::collections::BTreeSet<u64> = code_targets.clone();
    tables.extend(pointers.iter().filter(|&&(_, v)| in_data(v)).map(|&(_, v)| v));
    // A vtable starts with its type's drop glue (or 0), size and alignment: only a vtable's
    // methods are followed; a function in any other table (a handler a static's table holds,
    // whose address boot code may have kept) counts as a root.
    let word_at: BTreeMap<u64, u64> = data.iter().flat_map(words).collect();
    let is_vtable = |table: u64| {
        let word = |i: u64| word_at.get(&(table + 8 * i)).copied();
        let drop_glue = word(0).is_some_and(|w| w == 0 || listing.functions.contains_key(&w));
        match (word(1), word(2)) {
            (Some(size), Some(align)) => {
                drop_glue
                    && align.is_power_of_two()
                    && align <= 1 << 16
                    && size % align == 0
                    && size < 1 << 32
            }
            _ => false,
        }
    };
    let mut held = std::collections::BTreeSet::new();
    let mut held_by: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut to_visit: Vec<(u64, &str)> = Vec::new();
    for &(at, value) in &pointers {
        let function = listing.functions.get(&value).map(String::as_str);
        if let Some(name) = function {
            held.insert(name);
        }
        match (tables.range(at.saturating_sub(TABLE_REACH)..=at).next_back(), function) {
            (Some(&table), Some(_)) if is_vtable(table) => held_by.entry(table).or_default().push(value),
            (Some(&table), None) => held_by.entry(table).or_default().push(value),
            (_, Some(name)) => {
                pointed.insert(name);
            }
            (None, None) => to_visit.push((value, "data")),
        }
    }
    let mut live: Vec<&str> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (at, name) in &listing.functions {
        let name = name.as_str();
        let root = (!called.contains(name) && !held.contains(name))
            || pointed.contains(name)
            || RUNS_AFTER_BOOT.contains(&name);
        if !boot.contains(at) && root && seen.insert(name) {
            live.push(name);
        }
    }
    let mut found = Vec::new();
    // Which live function made each one live: a violation names the way from a root to it.
    let mut made_live_by: BTreeMap<&str, &str> = BTreeMap::new();
    fn way_to<'a>(mut name: &'a str, made_live_by: &BTreeMap<&'a str, &'a str>) -> String {
        let mut way = String::new();
        while let Some(&by) = made_live_by.get(name).filter(|_| way.len() < 1000) {
            way.push_str(if way.is_empty() { " (live through " } else { " <- " });
            way.push_str(by);
            name = by;
        }
        if !way.is_empty() {
            way.push(')');
        }
        way
    }
    let mut visited = std::collections::BTreeSet::new();
    loop {
        while let Some((table, by)) = to_visit.pop() {
            for &value in held_by.get(&table).filter(|_| visited.insert(table)).into_iter().flatten() {
                match listing.functions.get(&value).map(String::as_str) {
                    Some(held) if boot.contains(&value) => found.push(format!(
                        "table at {table:#x}, reached from {by}{}, holds {value:#x} in {held}",
                        way_to(by, &made_live_by)
                    )),
                    Some(held) if seen.insert(held) => {
                        made_live_by.insert(held, by);
                        live.push(held);
                    }
                    Some(_) => {}
                    None => to_visit.push((value, by)),
                }
            }
        }
        let Some(name) = live.pop() else { break };
        for r in from.get(name).into_iter().flatten() {
            if boot.contains(&r.to) {
                // `__boot_text_start` itself (an `udf` in link.ld) is an address, not code.
                if !MAY_ENTER.contains(&name) && r.to != boot.start {
                    let callee = owner(r.to).unwrap_or("?");
                    let way = way_to(name, &made_live_by);
                    found.push(format!("{:#x} in {} -> {:#x} in {callee}{way}", r.at, r.function, r.to));
                }
            } else if let Some(callee) = owner(r.to).filter(|c| !r.page && seen.insert(c)) {
                made_live_by.insert(callee, name);
                live.push(callee);
            }
            if !r.branch && !r.page && held_by.contains_key(&r.to) {
                to_visit.push((r.to, name));
            }
        }
    }
    // Pointers into the boot-only code held in data, and the live code that addresses their
    // tables.
    let mut targets: BTreeMap<u64, Vec<&Reference>> = BTreeMap::new();
    for r in refs.iter().filter(|r| !r.page) {
        targets.entry(r.to).or_default().push(r);
    }
    for (at, pointer) in data.iter().flat_map(words) {
        if boot.contains(&pointer) {
            match targets.range(at.saturating_sub(TABLE_REACH)..=at).next_back() {
                Some((&table, users)) => {
                    for user in users.iter().filter(|u| seen.contains(u.function.as_str())) {
                        found.push(format!(
                            "{:#x} in {} -> table at {table:#x}, whose word at {at:#x} points to {pointer:#x}",
                            user.at, user.function
                        ));
                    }
                }
                None => {
                    found.push(format!("a pointer to {pointer:#x} at {at:#x}, in a table no code addresses"))
                }
            }
        }
    }
    if let Ok(why) = std::env::var("TANTALUM_BOOT_CODE_WHY") {
        for n in seen.iter().filter(|n| n.contains(why.as_str())) {
            println!("WHY {n}: root={} {}", !made_live_by.contains_key(n), way_to(n, &made_live_by));
        }
    }
    let idle = listing
        .functions
        .iter()
        .filter(|(at, n)| !boot.contains(at) && !seen.contains(n.as_str()))
        .map(|(&at, n)| (at, n.as_str()))
        .collect();
    (found, idle)
}

/// A formatting trait's method (`<T as core::fmt::Display>::fmt`, `LowerHex`, `Debug`, ...), by
/// its name as `llvm-objdump -C` prints it. Code takes such a method's address only to put it in
/// a `core::fmt::Arguments`, which borrows the values it formats and so cannot outlive the
/// statement that made it: the method runs only while the function that took its address does.
/// It is therefore not a root of the code that runs after boot, only live when live code takes
/// its address (a function pointer that outlives its maker would be a root).
fn is_formatting_method(name: &str) -> bool {
    let name = name.split(" (.").next().unwrap_or(name);
    let name = match name.rsplit_once("::h") {
        Some((path, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => path,
        _ => name,
    };
    (name.contains("core::fmt::") || name.contains("core..fmt..")) && name.ends_with("::fmt")
}

/// The parts of an ELF file the check reads.
struct Elf {
    sections: Vec<Section>,
    symbols: BTreeMap<String, u64>,
    /// Function symbols (their mangled names) by address.
    functions: BTreeMap<u64, String>,
}

struct Section {
    name: String,
    addr: u64,
    alloc: bool,
    exec: bool,
    data: Vec<u8>,
}

impl Elf {
    fn parse(b: &[u8]) -> Option<Elf> {
        let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
        let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
        let u64_at = |o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
        if b.get(..6)? != b"\x7fELF\x02\x01" {
            return None;
        }
        let (shoff, shentsize, shnum, shstrndx) =
            (u64_at(0x28)? as usize, u16_at(0x3a)? as usize, u16_at(0x3c)? as usize, u16_at(0x3e)? as usize);
        struct Header {
            name: u32,
            kind: u32,
            flags: u64,
            addr: u64,
            offset: usize,
            size: usize,
            link: u32,
        }
        let header = |i: usize| -> Option<Header> {
            let h = shoff + i * shentsize;
            Some(Header {
                name: u32_at(h)?,
                kind: u32_at(h + 4)?,
                flags: u64_at(h + 8)?,
                addr: u64_at(h + 16)?,
                offset: u64_at(h + 24)? as usize,
                size: u64_at(h + 32)? as usize,
                link: u32_at(h + 40)?,
            })
        };
        let headers = (0..shnum).map(header).collect::<Option<Vec<_>>>()?;
        let contents = |h: &Header| b.get(h.offset..h.offset.checked_add(h.size)?);
        let string = |table: &[u8], at: u32| -> Option<String> {
            let s = table.get(at as usize..)?;
            Some(String::from_utf8_lossy(&s[..s.iter().position(|&c| c == 0)?]).into_owned())
        };
        let names = contents(headers.get(shstrndx)?)?;
        const NOBITS: u32 = 8;
        const SYMTAB: u32 = 2;
        let mut sections = Vec::new();
        let mut symbols = BTreeMap::new();
        let mut functions = BTreeMap::new();
        const FUNC: u8 = 2;
        for h in &headers {
            let data = if h.kind == NOBITS { Vec::new() } else { contents(h)?.to_vec() };
            sections.push(Section {
                name: string(names, h.name)?,
                addr: h.addr,
                alloc: h.flags & 2 != 0,
                exec: h.flags & 4 != 0,
                data,
            });
            if h.kind == SYMTAB {
                let strings = contents(headers.get(h.link as usize)?)?;
                for entry in contents(h)?.chunks_exact(24) {
                    let name = string(strings, u32::from_le_bytes(entry[..4].try_into().ok()?))?;
                    let value = u64::from_le_bytes(entry[8..16].try_into().ok()?);
                    if entry[4] & 0xf == FUNC {
                        functions.insert(value, name.clone());
                    }
                    symbols.insert(name, value);
                }
            }
        }
        Some(Elf { sections, symbols, functions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: Range<u64> = 0x4008_0000..0x4009_0000;

    fn violations(
        listing: &Listing,
        text: &Range<u64>,
        boot: &Range<u64>,
        data: &[(u64, &[u8])],
    ) -> Vec<String> {
        super::violations(listing, text, &[], boot, data).0
    }
    const BOOT: Range<u64> = 0x4008_2000..0x4008_4000;

    const LISTING: &str = "
0000000040080000 <primary_entry>:
40080000:      \tbl\t0x40082000 <primary_main>
0000000040080800 <secondary_entry>:
40080800:      \tbl\t0x40081000 <cpu_main>
0000000040081000 <cpu_main>:
40081000:      \tbl\t0x40085000 <resident>
40081004:      \tadrp\tx1, 0x400b1000 <table>
40081008:      \tadd\tx1, x1, #0x10
4008100c:      \tldr\tx2, [x1, #0x8]
40081010:      \tb.ne\t0x40081000 <cpu_main>
0000000040082000 <primary_main>:
40082000:      \tbl\t0x40081000 <cpu_main>
40082004:      \tadrp\tx3, 0x400b2000 <boot_table>
40082008:      \tadd\tx3, x3, #0x0
0000000040085000 <resident>:
40085000:      \tret
";

    #[test]
    fn references_from_branches_and_adrp_pairs() {
        let listing = references(LISTING);
        let refs: Vec<(u64, u64)> = listing.refs.iter().map(|r| (r.at, r.to)).collect();
        assert_eq!(
            listing.functions.keys().copied().collect::<Vec<_>>(),
            [0x4008_0000, 0x4008_0800, 0x4008_1000, 0x4008_2000, 0x4008_5000]
        );
        assert_eq!(
            refs,
            [
                (0x4008_0000, 0x4008_2000),
                (0x4008_0800, 0x4008_1000),
                (0x4008_1000, 0x4008_5000),
                (0x4008_1004, 0x400b_1000),
                (0x4008_1008, 0x400b_1010),
                (0x4008_1010, 0x4008_1000),
                (0x4008_2000, 0x4008_1000),
                (0x4008_2004, 0x400b_2000),
                (0x4008_2008, 0x400b_2000),
            ]
        );
    }

    #[test]
    fn the_entry_may_call_boot_code_and_boot_code_anything() {
        assert_eq!(violations(&references(LISTING), &TEXT, &BOOT, &[]), Vec::<String>::new());
    }

    #[test]
    fn a_resident_branch_into_boot_code_is_found() {
        let listing = LISTING.replace("bl\t0x40085000 <resident>", "bl\t0x40083000 <boot_helper>");
        let found = violations(&references(&listing), &TEXT, &BOOT, &[]);
        assert_eq!(
            found,
            ["0x40081000 in cpu_main -> 0x40083000 in primary_main (live through secondary_entry)"]
        );
    }

    #[test]
    fn a_resident_pointer_to_boot_code_is_found() {
        let listing =
            LISTING.replace("#0x10\n", "#0x10\n40081800:      \tadrp\tx4, 0x40083000 <boot_helper>\n");
        let found = violations(&references(&listing), &TEXT, &BOOT, &[]);
        assert_eq!(
            found,
            ["0x40081800 in cpu_main -> 0x40083000 in primary_main (live through secondary_entry)"]
        );
    }

    #[test]
    fn tables_are_blamed_on_the_code_that_uses_them() {
        let mut rodata = vec![0u8; 0x2000];
        // A boot-only table at 0x400b2000 (addressed by primary_main) pointing to boot code:
        // fine. A table at 0x400b1010 (addressed by cpu_main) pointing there: found.
        rodata[0x1000 + 8..0x1000 + 16].copy_from_slice(&0x4008_2100u64.to_le_bytes());
        assert_eq!(
            violations(&references(LISTING), &TEXT, &BOOT, &[(0x400b_1000, &rodata)]),
            Vec::<String>::new()
        );
        rodata[0x18..0x20].copy_from_slice(&0x4008_2100u64.to_le_bytes());
        let found = violations(&references(LISTING), &TEXT, &BOOT, &[(0x400b_1000, &rodata)]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("0x40081008 in cpu_main -> table at 0x400b1010"), "{found:?}");
    }

    #[test]
    fn resident_code_only_boot_code_calls_may_call_boot_code() {
        // An adapter outside the boot-only pages, called by primary_main only, that calls back.
        let listing =
            format!("{LISTING}0000000040086000 <adapter>:\n40086000:      \tbl\t0x40083000 <boot_helper>\n")
                .replace("#0x0\n", "#0x0\n4008200c:      \tbl\t0x40086000 <adapter>\n");
        assert_eq!(violations(&references(&listing), &TEXT, &BOOT, &[]), Vec::<String>::new());
        // Once live code calls it too, its call is found.
        let listing = listing.replace("b.ne\t0x40081000 <cpu_main>", "b.ne\t0x40086000 <adapter>");
        assert_eq!(
            violations(&references(&listing), &TEXT, &BOOT, &[]),
            ["0x40086000 in adapter -> 0x40083000 in primary_main (live through cpu_main <- secondary_entry)"]
        );
    }

    #[test]
    fn a_function_whose_address_is_taken_is_live() {
        // primary_main hands `later` to the firmware (as secondary_entry is): it runs after
        // boot whoever calls it, so its call into the boot-only code is found.
        let listing =
            format!("{LISTING}0000000040086000 <later>:\n40086000:      \tbl\t0x40083000 <boot_helper>\n")
                .replace("#0x0\n", "#0x0\n4008200c:      \tadr\tx0, 0x40086000 <later>\n");
        assert_eq!(
            violations(&references(&listing), &TEXT, &BOOT, &[]),
            ["0x40086000 in later -> 0x40083000 in primary_main"]
        );
        // Called by boot code only, it is not live; once data holds its address, it is.
        let listing = listing.replace("adr\tx0, 0x40086000 <later>", "bl\t0x40086000 <later>");
        assert_eq!(violations(&references(&listing), &TEXT, &BOOT, &[]), Vec::<String>::new());
        let table = 0x4008_6000u64.to_le_bytes();
        assert_eq!(
            violations(&references(&listing), &TEXT, &BOOT, &[(0x400c_0000, &table)]),
            ["0x40086000 in later -> 0x40083000 in primary_main"]
        );
    }

    #[test]
    fn a_function_a_table_holds_runs_after_boot_once_live_code_reaches_the_table() {
        // `later` is called by boot code only, and its address lies in a table.
        let listing =
            format!("{LISTING}0000000040086000 <later>:\n40086000:      \tbl\t0x40083000 <boot_helper>\n")
                .replace("#0x0\n", "#0x0\n4008200c:      \tbl\t0x40086000 <later>\n");
        let listing = references(&listing);
        let found_live =
            ["0x40086000 in later -> 0x40083000 in primary_main (live through cpu_main <- secondary_entry)"];
        let found_live_as_root = ["0x40086000 in later -> 0x40083000 in primary_main"];
        // In the table only primary_main addresses (0x400b2000): boot-only, as if no table held it.
        let mut rodata = vec![0u8; 0x2000];
        // Both tables are vtables: no drop glue, size 8, alignment 8, then the method.
        for table in [0x10, 0x1000] {
            rodata[table + 8..table + 16].copy_from_slice(&8u64.to_le_bytes());
            rodata[table + 16..table + 24].copy_from_slice(&8u64.to_le_bytes());
        }
        rodata[0x1018..0x1020].copy_from_slice(&0x4008_6000u64.to_le_bytes());
        let (found, idle) = super::violations(&listing, &TEXT, &[], &BOOT, &[(0x400b_1000, &rodata)]);
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(idle, [(0x4008_6000, "later")]);
        // A table cpu_main addresses (0x400b1010) points to that vtable: live code reaches it.
        rodata[0x28..0x30].copy_from_slice(&0x400b_2000u64.to_le_bytes());
        assert_eq!(violations(&listing, &TEXT, &BOOT, &[(0x400b_1000, &rodata)]), found_live);
        // In cpu_main's vtable itself: live.
        rodata[0x28..0x30].copy_from_slice(&0x4008_6000u64.to_le_bytes());
        rodata[0x1018..0x1020].fill(0);
        assert_eq!(violations(&listing, &TEXT, &BOOT, &[(0x400b_1000, &rodata)]), found_live);
        // In a table that is no vtable (no size and alignment), only boot code addresses: a
        // root all the same (boot code may have kept the table's address).
        rodata[0x28..0x30].fill(0);
        rodata[0x1010..0x1018].fill(0);
        rodata[0x1018..0x1020].copy_from_slice(&0x4008_6000u64.to_le_bytes());
        assert_eq!(violations(&listing, &TEXT, &BOOT, &[(0x400b_1000, &rodata)]), found_live_as_root);
    }

    #[test]
    fn a_vtable_of_boot_code_reached_through_a_live_table_is_found() {
        // A boot-only vtable (0x400b2000: no drop glue, size 8, alignment 8, primary_main)
        // that the table cpu_main addresses (0x400b1010) points to.
        let mut rodata = vec![0u8; 0x2000];
        rodata[0x1008..0x1010].copy_from_slice(&8u64.to_le_bytes());
        rodata[0x1010..0x1018].copy_from_slice(&8u64.to_le_bytes());
        rodata[0x1018..0x1020].copy_from_slice(&0x4008_2000u64.to_le_bytes());
        assert_eq!(
            violations(&references(LISTING), &TEXT, &BOOT, &[(0x400b_1000, &rodata)]),
            Vec::<String>::new()
        );
        rodata[0x10..0x18].copy_from_slice(&0x400b_2000u64.to_le_bytes());
        assert_eq!(
            violations(&references(LISTING), &TEXT, &BOOT, &[(0x400b_1000, &rodata)]),
            ["table at 0x400b2000, reached from cpu_main (live through secondary_entry), holds 0x40082000 in primary_main"]
        );
    }

    #[test]
    fn the_hypervisor_keeps_no_trait_object_beyond_the_code_that_made_it() {
        assert_eq!(lasting_trait_objects(&crate::root()).unwrap(), Vec::<String>::new());
        let dir = std::env::temp_dir().join(format!("tantalum-lasting-{}", std::process::id()));
        for sources in HYPERVISOR_SOURCES {
            std::fs::create_dir_all(dir.join(sources)).unwrap();
        }
        let src = dir.join("core/src");
        std::fs::write(src.join("a.rs"), "fn f(_: &mut dyn Write) {}\nstruct S { w: Box<dyn Write> } // here\n// Box<dyn T> in a comment\n#[cfg(test)]\nmod tests { fn g(_: Box<dyn T>) {} }\n").unwrap();
        std::fs::write(src.join("tests.rs"), "static T: &'static dyn Tr = &X;\n").unwrap();
        let found = lasting_trait_objects(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found, ["core/src/a.rs:2: struct S { w: Box<dyn Write> } // here"]);
    }

    #[test]
    fn formatting_methods_are_named() {
        assert!(is_formatting_method("<i64 as core::fmt::Display>::fmt"));
        assert!(is_formatting_method("<u64 as core::fmt::LowerHex>::fmt (.12)"));
        assert!(is_formatting_method(
            "_$LT$tantalum_aarch64..system..LoadError$u20$as$u20$core..fmt..Display$GT$::fmt::h3ec29853eadaba7b"
        ));
        assert!(!is_formatting_method("core::fmt::write"));
        assert!(!is_formatting_method("<core::fmt::Formatter>::pad"));
        assert!(!is_formatting_method("tantalum_aarch64::sysreg::format::h0123456789abcdef"));
    }

    #[test]
    fn a_formatting_method_runs_after_boot_only_if_live_code_takes_its_address() {
        // Boot code takes the address of a formatting method and of a plain function (which
        // it might keep for later: a root); live code the address of a second formatting method.
        let listing = format!(
            "{LISTING}0000000040086000 <<i64 as core::fmt::Display>::fmt>:\n40086000:      \tret\n\
             0000000040086100 <<u32 as core::fmt::Display>::fmt>:\n40086100:      \tret\n\
             0000000040086200 <handler>:\n40086200:      \tret\n"
        )
        .replace(
            "#0x0\n",
            "#0x0\n4008200c:      \tadr\tx1, 0x40086000 <<i64 as core::fmt::Display>::fmt>\n\
             40082010:      \tadr\tx2, 0x40086200 <handler>\n",
        )
        .replace(
            "40081010:",
            "40081014:      \tadr\tx8, 0x40086100 <<u32 as core::fmt::Display>::fmt>\n40081010:",
        );
        let listing = references(&listing);
        let (found, idle) = super::violations(&listing, &TEXT, &[], &BOOT, &[]);
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(idle, [(0x4008_6000, "<i64 as core::fmt::Display>::fmt")]);
    }

    #[test]
    fn functions_only_boot_code_runs_are_listed() {
        let listing =
            format!("{LISTING}0000000040086000 <adapter>:\n40086000:      \tbl\t0x40083000 <boot_helper>\n")
                .replace("#0x0\n", "#0x0\n4008200c:      \tbl\t0x40086000 <adapter>\n");
        let listing = references(&listing);
        let (found, idle) = super::violations(&listing, &TEXT, &[], &BOOT, &[]);
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(idle, [(0x4008_6000, "adapter")]);
    }

    #[test]
    fn an_adrp_page_alone_makes_nothing_live() {
        // Live code's `adrp` lands on the page `adapter` starts, for an address further on.
        let listing = format!(
            "{LISTING}0000000040086000 <adapter>:\n40086000:      \tbl\t0x40083000 <boot_helper>\n0000000040086800 <other>:\n40086800:      \tret\n"
        )
        .replace("#0x0\n", "#0x0\n4008200c:      \tbl\t0x40086000 <adapter>\n")
        .replace("#0x10\n", "#0x10\n40081014:      \tadrp\tx9, 0x40086000 <adapter>\n40081018:      \tadd\tx9, x9, #0x800\n");
        let listing = references(&listing);
        let (found, idle) = super::violations(&listing, &TEXT, &[], &BOOT, &[]);
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(idle, [(0x4008_6000, "adapter")]);
    }

    #[test]
    fn a_pointer_no_code_addresses_is_found() {
        let mut data = vec![0u8; 0x400];
        data[0x300..0x308].copy_from_slice(&0x4008_2100u64.to_le_bytes());
        let found = violations(&references(LISTING), &TEXT, &BOOT, &[(0x400c_0000, &data)]);
        assert_eq!(found, ["a pointer to 0x40082100 at 0x400c0300, in a table no code addresses"]);
    }
}
