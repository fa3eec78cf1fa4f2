use super::*;

#[test]
fn accepts_ordinary_paths() {
    for p in [
        "a",
        "a/b/c.txt",
        ".syncthing",
        "x/.sync",
        "dir/..a",
        "é",
        "a b/c",
    ] {
        assert!(RelPath::new(p).is_ok(), "{p}");
    }
}

#[test]
fn rejects_unsafe_paths() {
    let cases = [
        ("", PathError::Empty),
        ("/etc/passwd", PathError::Absolute),
        ("a//b", PathError::EmptyComponent),
        ("a/", PathError::EmptyComponent),
        ("./a", PathError::Dot),
        ("a/../../b", PathError::DotDot),
        ("..", PathError::DotDot),
        ("a\0b", PathError::Nul),
        ("a\\..\\b", PathError::Backslash),
        (".sync", PathError::StateDir),
        (".sync/IgnoreList", PathError::StateDir),
        (".SYNC/Archive/x", PathError::StateDir),
        ("e\u{301}", PathError::NotNfc),
    ];
    for (p, want) in cases {
        assert_eq!(RelPath::new(p), Err(want), "{p:?}");
    }
    let long = "a/".repeat(2048) + "a";
    assert!(matches!(RelPath::new(long), Err(PathError::TooLong { .. })));
    let comp = "x".repeat(256);
    assert!(matches!(
        RelPath::new(comp),
        Err(PathError::ComponentTooLong { len: 256, .. })
    ));
    assert!(RelPath::new("x".repeat(255)).is_ok());
}

#[test]
fn normalizes_nfd() {
    let p = RelPath::new_normalized("cafe\u{301}/x").unwrap();
    assert_eq!(p.as_str(), "caf\u{e9}/x");
}

#[test]
fn flags_windows_names() {
    for p in [
        "CON",
        "a/con.txt",
        "Nul",
        "COM1.tar.gz",
        "lpt9",
        "a/b<c",
        "x:y",
        "a.",
        "b ",
        "COM¹",
    ] {
        assert!(RelPath::new(p).unwrap().windows_issue().is_some(), "{p}");
    }
    for p in ["CONSOLE", "com10", "a/b.c", "nul_", "xcon"] {
        assert_eq!(RelPath::new(p).unwrap().windows_issue(), None, "{p}");
    }
}

#[test]
fn parent_and_prefix() {
    let p = RelPath::new("a/b/c").unwrap();
    assert_eq!(p.file_name(), "c");
    assert_eq!(p.parent().unwrap().as_str(), "a/b");
    assert!(p.starts_with(&RelPath::new("a").unwrap()));
    assert!(p.starts_with(&RelPath::new("a/b/c").unwrap()));
    assert!(!p.starts_with(&RelPath::new("a/b/cd").unwrap()));
    assert!(
        !RelPath::new("ab")
            .unwrap()
            .starts_with(&RelPath::new("a").unwrap())
    );
    assert_eq!(RelPath::new("top").unwrap().parent(), None);
}
