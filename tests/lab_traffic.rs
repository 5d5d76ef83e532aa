//! The lab's global router end to end (Chaos Kong's playground): users split over the regions
//! by the geo split, steering that moves a share of a region's users to another region, the
//! failover of an edge steered away entirely, the steering API's save-and-restore contract,
//! and a region's capacity. Everything goes to 127.0.0.1 (or into the namespaces of a
//! `--netns` lab).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{stdout, Lab};

/// `${lab.global}`
fn global(lab: &Lab) -> String {
    lab.state()["global"].as_str().unwrap().to_string()
}

/// `${lab.REGION.edge}`
fn edge(state: &Value, region: &str) -> String {
    let regions = state["regions"].as_array().unwrap();
    let r = regions.iter().find(|r| r["name"] == region).unwrap();
    r["edge"].as_str().unwrap().to_string()
}

/// One request over a fresh connection with extra `headers`: (status, lowercased head, body).
fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, String) {
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let addr: std::net::SocketAddr = host.parse().expect("tests use IP:PORT");
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn get(url: &str) -> (u16, String) {
    let (status, _, body) = request("GET", url, &[], "");
    (status, body)
}

fn put(url: &str, body: &str) -> (u16, String) {
    let (status, _, body) = request("PUT", url, &[], body);
    (status, body)
}

/// A header of a lowercased head.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        .map(str::to_string)
}

/// `GET /play` on the global router as `user` (or anonymous): (home, served), after
/// checking it was a 200.
fn play(global: &str, user: Option<&str>) -> (String, String) {
    let headers: Vec<(&str, &str)> = user.map(|u| ("x-simian-user", u)).into_iter().collect();
    let (status, head, body) = request("GET", &format!("{global}/play"), &headers, "");
    assert_eq!(status, 200, "{head}\n{body}");
    (
        header(&head, "x-simian-home").expect("x-simian-home"),
        header(&head, "x-simian-region").expect("x-simian-region"),
    )
}

/// `n` anonymous plays, counted by (home, served).
fn spray(global: &str, n: usize) -> BTreeMap<(String, String), usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        *seen.entry(play(global, None)).or_default() += 1;
    }
    seen
}

fn pair(home: &str, served: &str) -> (String, String) {
    (home.to_string(), served.to_string())
}

/// The value of one exact series in a Prometheus text page.
fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[test]
fn without_steering_users_are_served_at_home_split_by_geo() {
    let lab = Lab::up();
    let global = global(&lab);
    let state = lab.state();
    assert_eq!(state["traffic"]["geo"]["us-east"], 50, "{state}");
    let (status, steering) = get(&format!("{global}/steering"));
    assert_eq!(status, 200);
    assert_eq!(
        steering.trim(),
        r#"{"us-east":{"to":null,"percent":0},"us-west":{"to":null,"percent":0}}"#
    );

    let seen = spray(&global, 200);
    for region in ["us-east", "us-west"] {
        let n = seen.get(&pair(region, region)).copied().unwrap_or(0);
        assert!((60..=140).contains(&n), "{region}: {n} of 200: {seen:?}");
    }
    assert_eq!(seen.len(), 2, "everyone served at home: {seen:?}");

    let status = lab
        .simian()
        .args(["lab", "status", "--json"])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["global"].as_str(), Some(global.as_str()));
    assert_eq!(status["steering"]["us-east"]["to"], Value::Null);
    let text = stdout(&lab.simian().args(["lab", "status"]).output().unwrap());
    assert!(
        text.contains(&format!("global router    {global}")),
        "{text}"
    );
    assert!(
        text.contains("REGION   USERS  CAPACITY  STEERING"),
        "{text}"
    );
}

#[test]
fn steering_a_region_fully_away_serves_its_users_elsewhere_and_its_edge_fails_over() {
    let lab = Lab::up();
    let global = global(&lab);
    let state = lab.state();
    let (status, body) = put(
        &format!("{global}/steering/us-east"),
        r#"{"to":"us-west","percent":100}"#,
    );
    assert_eq!(
        (status, body.trim()),
        (200, r#"{"to":"us-west","percent":100}"#)
    );

    let seen = spray(&global, 100);
    assert!(
        seen.keys().all(|(_, served)| served == "us-west"),
        "{seen:?}"
    );
    let moved = seen.get(&pair("us-east", "us-west")).copied().unwrap_or(0);
    assert!(moved > 20, "us-east's users arrive and are moved: {seen:?}");

    // Clients that go straight to us-east's edge are forwarded, like Zuul's failover.
    let (status, head, body) =
        request("GET", &format!("{}/play", edge(&state, "us-east")), &[], "");
    assert_eq!(status, 200, "{head}\n{body}");
    assert_eq!(
        header(&head, "x-simian-forwarded-from").as_deref(),
        Some("us-east")
    );
    assert_eq!(header(&head, "x-simian-edge").as_deref(), Some("us-west"));
    assert_eq!(header(&head, "x-simian-region").as_deref(), Some("us-west"));
    // us-west's own edge serves as ever.
    let (_, head, _) = request("GET", &format!("{}/play", edge(&state, "us-west")), &[], "");
    assert_eq!(header(&head, "x-simian-forwarded-from"), None);

    // The stream starts count who was served where.
    let (_, page) = get(&format!("{global}/metrics"));
    let starts = |home: &str, served: &str| {
        let series =
            format!("simian_lab_stream_starts_total{{home=\"{home}\",served=\"{served}\"}}");
        metric(&page, &series).unwrap_or_else(|| panic!("{series}\n{page}")) as usize
    };
    assert_eq!(starts("us-east", "us-west"), moved, "{page}");
    assert_eq!(starts("us-east", "us-east"), 0, "{page}");
    assert_eq!(starts("us-west", "us-west"), 100 - moved, "{page}");
    assert_eq!(
        metric(
            &page,
            "simian_lab_global_requests_total{home=\"us-east\",served=\"us-west\",code=\"200\"}"
        ),
        Some(moved as f64),
        "{page}"
    );
    assert_eq!(
        metric(
            &page,
            "simian_lab_steering_percent{from=\"us-east\",to=\"us-west\"}"
        ),
        Some(100.0),
        "{page}"
    );
    assert_eq!(
        metric(&page, "simian_lab_edge_forwarded_total{region=\"us-east\"}"),
        Some(1.0),
        "{page}"
    );
    let text = stdout(&lab.simian().args(["lab", "status"]).output().unwrap());
    assert!(text.contains("100% to us-west"), "{text}");
}

#[test]
fn half_steering_moves_half_of_the_regions_users_and_each_user_stays_put() {
    let lab = Lab::up();
    let global = global(&lab);
    let (status, _) = put(
        &format!("{global}/steering/us-east"),
        r#"{"to":"us-west","percent":50}"#,
    );
    assert_eq!(status, 200);

    let mut east = Vec::new();
    for i in 0..300 {
        let user = format!("user-{i}");
        let (home, served) = play(&global, Some(&user));
        match home.as_str() {
            "us-east" => east.push((user, served)),
            _ => assert_eq!(served, "us-west", "{user} lives in us-west"),
        }
    }
    let moved = east.iter().filter(|(_, s)| s == "us-west").count();
    assert!(
        east.len() > 90,
        "{} of 300 users live in us-east",
        east.len()
    );
    assert!(
        (east.len() * 3 / 10..=east.len() * 7 / 10).contains(&moved),
        "{moved} of {} us-east users moved",
        east.len()
    );
    // The same user lands the same way every time.
    for (user, served) in east.iter().take(10) {
        assert_eq!(
            &play(&global, Some(user)),
            &("us-east".to_string(), served.clone())
        );
    }
}

#[test]
fn putting_back_the_saved_entry_restores_the_steering_and_bad_puts_change_nothing() {
    let lab = Lab::up();
    let global = global(&lab);
    let url = format!("{global}/steering/us-east");
    let (_, before) = get(&format!("{global}/steering"));
    let (status, saved) = get(&url);
    assert_eq!((status, saved.trim()), (200, r#"{"to":null,"percent":0}"#));

    // A shifter's ramp: steps, one of them twice, then the saved body back verbatim.
    for step in [10, 30, 30, 60] {
        let body = format!(r#"{{"to":"us-west","percent":{step}}}"#);
        let (status, answer) = put(&url, &body);
        assert_eq!((status, answer.trim()), (200, body.as_str()));
    }
    let (_, during) = get(&url);
    assert_eq!(during.trim(), r#"{"to":"us-west","percent":60}"#);
    let (status, _) = put(&url, &saved);
    assert_eq!(status, 200);
    assert_eq!(get(&format!("{global}/steering")).1, before);

    put(&url, r#"{"to":"us-west","percent":25}"#);
    let (_, steered) = get(&format!("{global}/steering"));
    for (body, says) in [
        (
            r#"{"to":"us-west","percent":150}"#,
            "between 0 and 100, got 150",
        ),
        (
            r#"{"to":"us-east","percent":10}"#,
            "another region than `us-east`",
        ),
        (r#"{"to":"mars","percent":10}"#, "`mars`"),
        (r#"{"to":null,"percent":30}"#, "to is null"),
        (r#"{"to":"us-west","percent":"30"}"#, "must be a number"),
        (r#"{"to":"us-west"}"#, "percent is missing"),
        ("not json", "not JSON"),
    ] {
        let (status, answer) = put(&url, body);
        assert_eq!(status, 400, "{body}: {answer}");
        let error: Value = serde_json::from_str(&answer).unwrap();
        let message = error["error"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    let (status, answer) = put(
        &format!("{global}/steering/eu-west"),
        r#"{"to":null,"percent":0}"#,
    );
    assert_eq!(status, 404, "{answer}");
    assert_eq!(get(&format!("{global}/steering")).1, steered);
}

#[test]
fn a_region_over_its_capacity_sheds_what_is_beyond_its_rate() {
    let lab = Lab::up_with(&["--capacity", "us-west=50"]);
    let state = lab.state();
    assert_eq!(state["traffic"]["capacity"]["us-west"], 50, "{state}");
    let text = stdout(&lab.simian().args(["lab", "status"]).output().unwrap());
    assert!(text.contains("50/s"), "{text}");
    let url = format!("{}/play", edge(&state, "us-west"));

    // ~150 requests a second for 2s: three clients, one request each every 20ms.
    let started = Instant::now();
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut codes = BTreeMap::<u16, u32>::new();
                let start = Instant::now();
                for i in 0..100u32 {
                    let due = start + Duration::from_millis(20) * i;
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    let (status, _, body) = request("GET", &url, &[], "");
                    if status == 503 {
                        assert_eq!(body, "over capacity\n");
                    }
                    *codes.entry(status).or_default() += 1;
                }
                codes
            })
        })
        .collect();
    let mut codes = BTreeMap::<u16, u32>::new();
    for c in clients {
        for (code, n) in c.join().unwrap() {
            *codes.entry(code).or_default() += n;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let (ok, shed) = (
        codes.get(&200).copied().unwrap_or(0),
        codes.get(&503).copied().unwrap_or(0),
    );
    eprintln!("capacity 50/s, offered ~150/s: {codes:?} in {secs:.2}s");
    assert_eq!(ok + shed, 300, "only 200s and 503s: {codes:?}");
    assert!(
        shed >= 60,
        "load beyond the capacity is shed: {codes:?} in {secs:.1}s"
    );
    assert!(
        f64::from(ok) <= 50.0 * secs * 1.3 + 10.0,
        "no more than ~50/s succeed: {codes:?} in {secs:.1}s"
    );
    assert!(ok >= 40, "the capacity is served: {codes:?} in {secs:.1}s");

    let (_, page) = get(&format!("{}/metrics", global(&lab)));
    assert_eq!(
        metric(&page, "simian_lab_edge_shed_total{region=\"us-west\"}"),
        Some(f64::from(shed)),
        "{page}"
    );
    // us-east has no limit.
    assert_eq!(
        metric(&page, "simian_lab_edge_shed_total{region=\"us-east\"}"),
        Some(0.0)
    );
}

#[test]
fn steering_and_failover_work_in_a_netns_lab() {
    use crate::lab_netns::{root_or_skip, NetLab};
    if !root_or_skip() {
        return;
    }
    let lab = NetLab::new();
    let state = lab.up(&["--zones", "1", "--capacity", "us-west=1000"]);
    let global = state["global"].as_str().unwrap().to_string();
    assert!(global.starts_with("http://127.0.0.1:"), "{global}");
    assert_eq!(state["traffic"]["capacity"]["us-west"], 1000);

    let seen = spray(&global, 60);
    assert_eq!(
        seen.len(),
        2,
        "both regions serve their own users: {seen:?}"
    );
    put(
        &format!("{global}/steering/us-east"),
        r#"{"to":"us-west","percent":100}"#,
    );
    let seen = spray(&global, 40);
    assert!(seen.keys().all(|(_, s)| s == "us-west"), "{seen:?}");
    let (status, head, _) = request("GET", &format!("{}/play", edge(&state, "us-east")), &[], "");
    assert_eq!(status, 200, "{head}");
    assert_eq!(
        header(&head, "x-simian-forwarded-from").as_deref(),
        Some("us-east")
    );
    assert_eq!(header(&head, "x-simian-region").as_deref(), Some("us-west"));
}
