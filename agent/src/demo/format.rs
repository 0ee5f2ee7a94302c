//! Pure formatting helpers: log lines byte for byte as Docker's `json-file` driver and the
//! kubelet/containerd CRI logger write them. The demo generator writes with them, and tests and
//! benches elsewhere reuse them to produce realistic input without copying the rules.

use runnel_index::Stream;

/// Docker's log copier buffer: a line longer than this is written as several json-file entries.
pub const DOCKER_FRAGMENT_BYTES: usize = 16 * 1024;

/// containerd's default `max_container_log_line_size`: longer lines become `P` fragments.
pub const CRI_FRAGMENT_BYTES: usize = 16 * 1024;

/// Format `time_ns` (nanoseconds since the epoch) as Go's `time.RFC3339Nano` in UTC: nine
/// fraction digits with trailing zeros trimmed, and no fraction at all on a whole second —
/// exactly what Docker and the kubelet print.
pub fn format_time(time_ns: i64) -> String {
    let mut out = Vec::with_capacity(30);
    let style = runnel_index::TimeStyle {
        offset_secs: 0,
        frac_digits: 9,
        zulu: true,
    };
    crate::timefmt::format_rfc3339(time_ns, style, &mut out);
    // "...:SS.fffffffffZ": trim zeros from the fraction, and the dot if nothing is left.
    out.pop(); // 'Z'
    while out.last() == Some(&b'0') {
        out.pop();
    }
    if out.last() == Some(&b'.') {
        out.pop();
    }
    out.push(b'Z');
    String::from_utf8_lossy(&out).into_owned()
}

/// Append `bytes` as the body of a JSON string the way Docker's `jsonlog` encoder does: `"`, `\`
/// and `\n` `\r` `\t` short escapes, other control bytes and `<` `>` `&` as `\u00XX`, U+2028/9
/// escaped, each invalid UTF-8 byte as `\ufffd`.
pub fn write_json_string_body(out: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&') => {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
                }
                '\u{2028}' => out.extend_from_slice(b"\\u2028"),
                '\u{2029}' => out.extend_from_slice(b"\\u2029"),
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        for _ in chunk.invalid() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
}

/// Append one json-file entry: `{"log":"<log>","stream":"<stream>","time":"<time>"}\n`
/// (`time` last, as Docker writes it). `log` is written as given: a whole line carries its
/// trailing `\n`, a fragment of a long line does not.
pub fn write_json_file_line(out: &mut Vec<u8>, log: &[u8], stream: Stream, time: &str) {
    out.extend_from_slice(b"{\"log\":\"");
    write_json_string_body(out, log);
    out.extend_from_slice(b"\",\"stream\":\"");
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b"\"}\n");
}

/// Append the json-file entries for one application line `message` (without its newline):
/// one entry if it fits, else 16 KiB fragments without `\n` that all share the first
/// fragment's time, then the rest with `\n` — as Docker's log copier splits long lines.
/// Returns how many entries were written.
pub fn write_json_file_entry(
    out: &mut Vec<u8>,
    message: &[u8],
    stream: Stream,
    time_ns: i64,
) -> usize {
    let time = format_time(time_ns);
    let mut rest = message;
    let mut entries = 0;
    while rest.len() >= DOCKER_FRAGMENT_BYTES {
        let (head, tail) = rest.split_at(DOCKER_FRAGMENT_BYTES);
        write_json_file_line(out, head, stream, &time);
        rest = tail;
        entries += 1;
    }
    let mut last = Vec::with_capacity(rest.len() + 1);
    last.extend_from_slice(rest);
    last.push(b'\n');
    write_json_file_line(out, &last, stream, &time);
    entries + 1
}

/// Append one CRI line: `<time> <stream> <P|F> <content>\n`.
pub fn write_cri_line(
    out: &mut Vec<u8>,
    time: &str,
    stream: Stream,
    partial: bool,
    content: &[u8],
) {
    out.extend_from_slice(time.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(content);
    out.push(b'\n');
}

/// Append the CRI lines for one application line `message` (without newline): `P` fragments of
/// 16 KiB, each with its own time (`time_ns`, then one microsecond later each), then the `F`
/// line with the rest. Returns how many lines were written.
pub fn write_cri_entry(out: &mut Vec<u8>, message: &[u8], stream: Stream, time_ns: i64) -> usize {
    let mut rest = message;
    let mut lines = 0usize;
    let mut t = time_ns;
    while rest.len() > CRI_FRAGMENT_BYTES {
        let (head, tail) = rest.split_at(CRI_FRAGMENT_BYTES);
        write_cri_line(out, &format_time(t), stream, true, head);
        rest = tail;
        lines += 1;
        t = t.saturating_add(1_000);
    }
    write_cri_line(out, &format_time(t), stream, false, rest);
    lines + 1
}

/// Kubernetes identity of a container, as the kubelet names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Pod UID.
    pub uid: String,
    /// Container name within the pod.
    pub container: String,
}

/// The `config.v2.json` Docker keeps beside a container's log, reduced to the fields agents
/// read: `ID`, `Name` (`/k8s_<container>_<pod>_<ns>_<uid>_0` as dockershim/cri-dockerd name
/// it), `Config.Image`, `Config.Labels` with the `io.kubernetes.*` labels, and `LogPath`.
pub fn docker_config_v2(id: &str, pod: &PodRef, image: &str, log_path: &str) -> String {
    let name = format!(
        "/k8s_{}_{}_{}_{}_0",
        pod.container, pod.pod, pod.namespace, pod.uid
    );
    serde_json::json!({
        "ID": id,
        "Created": "2026-01-01T00:00:00.000000000Z",
        "Name": name,
        "Image": format!("sha256:{}", "0".repeat(64)),
        "LogPath": log_path,
        "Config": {
            "Hostname": pod.pod,
            "Image": image,
            "Labels": {
                "io.kubernetes.pod.name": pod.pod,
                "io.kubernetes.pod.namespace": pod.namespace,
                "io.kubernetes.container.name": pod.container,
                "io.kubernetes.pod.uid": pod.uid,
                "io.kubernetes.docker.type": "container",
            },
        },
        "HostConfig": { "LogConfig": { "Type": "json-file", "Config": { "max-size": "10m" } } },
        "State": { "Running": true },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn entries(bytes: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(bytes).unwrap();
        assert!(text.ends_with('\n'));
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn times_are_rfc3339nano_with_trailing_zeros_trimmed() {
        let base = 1_714_564_800_000_000_000; // 2024-05-01T12:00:00Z
        assert_eq!(format_time(base), "2024-05-01T12:00:00Z");
        assert_eq!(format_time(base + 500_000_000), "2024-05-01T12:00:00.5Z");
        assert_eq!(
            format_time(base + 123_456_780),
            "2024-05-01T12:00:00.12345678Z"
        );
        assert_eq!(format_time(base + 1), "2024-05-01T12:00:00.000000001Z");
        let (ns, _) = crate::timefmt::parse_rfc3339(&format_time(base + 1_230)).unwrap();
        assert_eq!(ns, base + 1_230);
    }

    #[test]
    fn json_file_line_round_trips_with_time_last() {
        let mut out = Vec::new();
        let msg = "GET /a?b=1&c=<2> \"q\" \\ \t\u{1}é \u{2028}";
        write_json_file_line(
            &mut out,
            format!("{msg}\n").as_bytes(),
            Stream::Stderr,
            "2024-05-01T12:00:00.5Z",
        );
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.ends_with("\"stream\":\"stderr\",\"time\":\"2024-05-01T12:00:00.5Z\"}\n"),
            "{text}"
        );
        assert!(
            text.contains("\\u0026") && text.contains("\\u003c") && text.contains("\\u0001"),
            "{text}"
        );
        let v = &entries(&out)[0];
        assert_eq!(v["log"], format!("{msg}\n"));
        assert_eq!(v["stream"], "stderr");
        assert_eq!(v["time"], "2024-05-01T12:00:00.5Z");
    }

    #[test]
    fn invalid_utf8_becomes_one_replacement_per_byte() {
        let mut out = Vec::new();
        write_json_file_line(
            &mut out,
            b"a\xff\xfeb\n",
            Stream::Stdout,
            "2024-05-01T12:00:00Z",
        );
        assert_eq!(entries(&out)[0]["log"], "a\u{fffd}\u{fffd}b\n");
    }

    #[test]
    fn long_json_file_lines_split_into_fragments_sharing_the_first_time() {
        let msg: Vec<u8> = (0..40_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut out = Vec::new();
        let n = write_json_file_entry(&mut out, &msg, Stream::Stdout, 1_714_564_800_123_000_000);
        let v = entries(&out);
        assert_eq!((n, v.len()), (3, 3));
        let logs: Vec<&str> = v.iter().map(|e| e["log"].as_str().unwrap()).collect();
        assert_eq!(logs[0].len(), DOCKER_FRAGMENT_BYTES);
        assert_eq!(logs[1].len(), DOCKER_FRAGMENT_BYTES);
        assert!(!logs[0].ends_with('\n') && !logs[1].ends_with('\n') && logs[2].ends_with('\n'));
        assert_eq!(
            logs.concat(),
            format!("{}\n", String::from_utf8(msg).unwrap())
        );
        assert!(v.iter().all(|e| e["time"] == "2024-05-01T12:00:00.123Z"));
    }

    #[test]
    fn a_line_of_exactly_16k_leaves_a_bare_newline_fragment() {
        let msg = vec![b'x'; DOCKER_FRAGMENT_BYTES];
        let mut out = Vec::new();
        assert_eq!(write_json_file_entry(&mut out, &msg, Stream::Stdout, 0), 2);
        assert_eq!(entries(&out)[1]["log"], "\n");
        let mut out = Vec::new();
        assert_eq!(
            write_json_file_entry(&mut out, b"short", Stream::Stdout, 0),
            1
        );
        assert_eq!(entries(&out)[0]["log"], "short\n");
        assert_eq!(entries(&out)[0]["time"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn cri_long_lines_become_p_fragments_then_f() {
        let msg = vec![b'z'; 2 * CRI_FRAGMENT_BYTES + 5];
        let mut out = Vec::new();
        let base = 1_714_564_800_000_000_000;
        assert_eq!(write_cri_entry(&mut out, &msg, Stream::Stderr, base), 3);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut content = String::new();
        let mut last_ns = i64::MIN;
        for (i, line) in lines.iter().enumerate() {
            let mut parts = line.splitn(4, ' ');
            let (time, stream, tag, body) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            let (ns, _) = crate::timefmt::parse_rfc3339(time).unwrap();
            assert!(ns > last_ns, "each fragment has its own, later time");
            last_ns = ns;
            assert_eq!(stream, "stderr");
            assert_eq!(tag, if i < 2 { "P" } else { "F" });
            content.push_str(body);
        }
        assert_eq!(content.len(), msg.len());
        let mut out = Vec::new();
        write_cri_line(
            &mut out,
            "2024-05-01T12:00:00Z",
            Stream::Stdout,
            false,
            b"hello world",
        );
        assert_eq!(out, b"2024-05-01T12:00:00Z stdout F hello world\n");
    }

    #[test]
    fn config_v2_carries_the_kubernetes_identity() {
        let pod = PodRef {
            namespace: "shop".into(),
            pod: "web-0".into(),
            uid: "u-1".into(),
            container: "nginx".into(),
        };
        let v: Value =
            serde_json::from_str(&docker_config_v2("abc", &pod, "nginx:1.27", "/x")).unwrap();
        assert_eq!(v["ID"], "abc");
        assert_eq!(v["Name"], "/k8s_nginx_web-0_shop_u-1_0");
        assert_eq!(v["Config"]["Image"], "nginx:1.27");
        let labels = &v["Config"]["Labels"];
        assert_eq!(labels["io.kubernetes.pod.name"], "web-0");
        assert_eq!(labels["io.kubernetes.pod.namespace"], "shop");
        assert_eq!(labels["io.kubernetes.container.name"], "nginx");
        assert_eq!(labels["io.kubernetes.pod.uid"], "u-1");
    }
}
