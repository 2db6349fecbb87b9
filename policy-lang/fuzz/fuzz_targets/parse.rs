//! Feeds arbitrary bytes (as lossy UTF-8) to the parser. Whenever a tree comes
//! back, formatting it must give text that parses without errors to an equal
//! tree, and formatting that again must change nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_policy::fmt::format;
use tollgate_policy::parse::parse;
use tollgate_policy::source::FileId;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (tree, _diags) = parse(&text, FileId(0));
    let Some(tree) = tree else { return };
    let formatted = format(&tree);
    let (again, diags) = parse(&formatted, FileId(0));
    assert!(
        diags.is_empty(),
        "formatted text does not parse:\n{formatted}\n{diags:#?}"
    );
    assert_eq!(again.as_ref(), Some(&tree), "formatted:\n{formatted}");
    if let Some(again) = again {
        assert_eq!(format(&again), formatted, "format is not idempotent");
    }
});
