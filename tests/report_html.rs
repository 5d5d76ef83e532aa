//! The HTML report of a real run, rendered by a real browser (headless Chromium), checked
//! by its pixels; and `simian report` rendering the same page again from the run's journal.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// Colours the report draws with (`simian_report::html::colours`), as RGB.
const FAULT: [u8; 3] = [0xff, 0xcf, 0x8a];
const LINE: [u8; 3] = [0x0b, 0x62, 0xd6];
const HISTOGRAM: [u8; 3] = [0x54, 0xae, 0xff];

/// A zone kill and a slow store at once: the zone's own probe breaks (a breach), the
/// latency fault gets its histogram, and the run reports its time to recover.
fn experiment() -> &'static str {
    r#"version: 1
name: html-report
steady_state:
  probes:
    users:
      http: { url: "${lab.us-east.edge}/play", rate: 50, timeout: 1s }
    zone_a:
      http: { url: "${lab.us-east-a-1}/play", rate: 20, timeout: 500ms }
  hypothesis:
    - "users.success_ratio >= 95%"
    - "users.p99 < 1s"
    - "zone_a.success_ratio >= 99%"
  before: 3s
  window: 1s
  after: 2s
  settle: 500ms
  recovers_within: 20s
method:
  - inject:
      name: zone-down
      process:
        target: { lab: { zone: us-east-a } }
  - inject:
      name: slow-store
      latency:
        api: "${lab.proxy}"
        proxy: store-us-east
        distribution: { lognormal: { median: 20ms, sigma: 0.5 } }
  - wait: 4s
guards:
  max_duration: 2m
"#
}

/// Chromium from Debian (`apt-get install chromium`; CI installs it): a missing browser
/// fails the test, it does not skip it.
fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "chromium is not installed: `apt-get install -y chromium` (.ci/run installs it); \
                 this test renders the HTML report in it"
            )
        })
}

/// Renders `html` headless into a 1200×1600 PNG; nothing from the network (the flags
/// keep Chromium's own background fetches off too).
fn screenshot(html: &Path, png: &Path) {
    let profile = tempfile::tempdir().unwrap();
    let child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--force-color-profile=srgb",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,1600")
        .arg(format!("file://{}", html.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start chromium");
    let code = exit_code_within(child, Duration::from_secs(90));
    assert_eq!(code, Some(0), "chromium did not render {}", html.display());
}

/// How many pixels of the PNG are `rgb`, give or take 3 per channel.
fn pixels_of(png: &Path, rgb: [u8; 3]) -> usize {
    let file = std::io::BufReader::new(std::fs::File::open(png).expect("the screenshot"));
    let mut decoder = png::Decoder::new(file);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    assert_eq!((info.width, info.height), (1200, 1600));
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    buf[..info.buffer_size()]
        .chunks_exact(step)
        .filter(|p| (0..3).all(|i| p[i].abs_diff(rgb[i]) <= 3))
        .count()
}

/// Nothing a browser would fetch: no scripts, styles, images or frames from anywhere, and
/// `http://`/`https://` only in text (escaped text has no `<`, so this scan is exact).
fn assert_self_contained(html: &str) {
    for bad in [
        "<script", "<link", "<img", "<iframe", "<object", "<embed", "src=", "href=", "url(",
        "@import",
    ] {
        assert!(!html.contains(bad), "`{bad}` in the report");
    }
    let mut in_tag = false;
    for (i, c) in html.char_indices() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if in_tag
                && (html[i..].starts_with("http://") || html[i..].starts_with("https://")) =>
            {
                panic!(
                    "a URL inside a tag: {}",
                    &html[i.saturating_sub(80)..(i + 80).min(html.len())]
                )
            }
            _ => {}
        }
    }
}

/// The timeline section of a page: every chart.
fn timeline(html: &str) -> &str {
    let from = html.find("<h2>Timeline</h2>").expect("a timeline");
    let to = from + html[from..].find("</section>").unwrap();
    &html[from..to]
}

#[test]
fn the_html_report_of_a_real_run_renders_with_its_plots_and_can_be_rebuilt_from_the_journal() {
    let lab = Lab::up();
    let dir = lab.state_dir();
    let f = lab.experiment("html.yaml", experiment());
    let (html, json, journal) = (
        dir.join("run.html"),
        dir.join("run.json"),
        dir.join("run.jsonl"),
    );
    let out = lab
        .simian()
        .arg("run")
        .arg(&f)
        .arg("--html")
        .arg(&html)
        .arg("--json")
        .arg(&json)
        .arg("--journal")
        .arg(&journal)
        .output()
        .unwrap();
    // The zone's own probe fails while the zone is down: deviated.
    assert_exit(&out, 1);
    let page = std::fs::read_to_string(&html).expect("--html wrote the report");
    assert_self_contained(&page);
    for part in [
        "<h1>html-report <span class=\"verdict deviated\">DEVIATED</span></h1>",
        "<b>users</b> · p99",
        "<b>zone_a</b> · success_ratio",
        "class=\"fault\"",
        "first breach +",
        "recovered in ",
        "baseline ",
        "Delays injected by slow-store",
        "lognormal median 20ms σ 0.5",
    ] {
        assert!(page.contains(part), "no `{part}` in the report");
    }
    assert!(page.len() < 1_000_000, "{} bytes", page.len());

    // A real browser draws it: the fault windows shaded, the metric lines, the histogram.
    let png = dir.join("run.png");
    screenshot(&html, &png);
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report_html.png");
    let _ = std::fs::copy(&png, &keep);
    let (fault, line, bars) = (
        pixels_of(&png, FAULT),
        pixels_of(&png, LINE),
        pixels_of(&png, HISTOGRAM),
    );
    eprintln!(
        "{} bytes of HTML; screenshot {}: {fault} fault-window pixels, {line} line pixels, {bars} histogram pixels",
        page.len(),
        keep.display()
    );
    assert!(
        fault > 20_000,
        "only {fault} pixels of the fault-window colour"
    );
    assert!(line > 1_000, "only {line} pixels of the plot line colour");

    // The journal alone gives the same page, and so does the JSON report.
    let again = dir.join("again.html");
    let summary = dir.join("again.md");
    let junit = dir.join("again.xml");
    let out = lab
        .simian()
        .arg("report")
        .arg(&journal)
        .arg("--html")
        .arg(&again)
        .arg("--summary")
        .arg(&summary)
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let rebuilt = std::fs::read_to_string(&again).unwrap();
    assert_eq!(
        timeline(&rebuilt),
        timeline(&page),
        "the journal's plots differ"
    );
    assert_eq!(rebuilt, page, "the journal's report differs");
    assert!(std::fs::read_to_string(&summary)
        .unwrap()
        .starts_with("### ❌ html-report: deviated (exit 1)"));
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .contains("<testsuite"));
    let from_json = dir.join("from-json.html");
    let out = lab
        .simian()
        .arg("report")
        .arg(&json)
        .arg("--html")
        .arg(&from_json)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(std::fs::read_to_string(&from_json).unwrap(), page);

    // A run that never finished (SIGKILLed: no report, no end) is refused, pointing at recover.
    let text = std::fs::read_to_string(&journal).unwrap();
    let cut: String = text
        .lines()
        .take_while(|l| !l.starts_with(r#"{"type":"report""#))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(cut.len() < text.len(), "the journal has a report entry");
    let killed = dir.join("killed.jsonl");
    std::fs::write(&killed, cut).unwrap();
    let out = lab
        .simian()
        .arg("report")
        .arg(&killed)
        .arg("--html")
        .arg(dir.join("killed.html"))
        .output()
        .unwrap();
    assert_exit(&out, 3);
    let e = stderr(&out);
    assert!(
        e.contains(&format!(
            "the run did not finish: no report in {}; `simian recover {}` reverts what it left",
            killed.display(),
            killed.display()
        )),
        "{e}"
    );
    assert!(!dir.join("killed.html").exists());
}

#[test]
fn simian_report_refuses_what_is_not_a_report_or_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "text.txt",
            "hello\n",
            "is neither a report of `simian run --json` nor a run journal",
        ),
        (
            "other.json",
            r#"{"a": 1}"#,
            "is JSON, but not a report of `simian run --json`",
        ),
    ];
    for (name, content, message) in cases {
        let f = dir.path().join(name);
        std::fs::write(&f, content).unwrap();
        let out = Command::new(BIN)
            .arg("report")
            .arg(&f)
            .arg("--html")
            .arg(dir.path().join("x.html"))
            .output()
            .unwrap();
        assert_exit(&out, 3);
        let e = stderr(&out);
        assert!(e.contains(message), "{name}: {e}");
        assert_eq!(e.lines().count(), 1, "one line: {e}");
    }
    let missing = Command::new(BIN)
        .args(["report", "/nonexistent/run.json"])
        .output()
        .unwrap();
    assert_exit(&missing, 3);
}
