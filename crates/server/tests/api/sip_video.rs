//! A SIP video terminal in the same meeting as two browsers, end to end: baresip (Debian's,
//! with `baresip-ffmpeg`'s H.264) sends a blue camera from a `.y4m` file and shows what it
//! receives (`fakevideo`); two Chromiums send red and green.
//!
//! - The terminal's H.264 camera reaches the browsers through the SFU: each page shows it,
//!   blue, in its tile.
//! - The composed picture has every camera in its tile (the terminal's decoded by openh264).
//! - The terminal receives the composed picture (H.264, encoded once, at its level's size):
//!   its snapshot (`snapshot_recv`, a PNG) shows the browsers' red and green, and its own
//!   blue, each in its tile of the 2×2 layout.
//! - The meeting's live stream shows the same layout: its HLS segments (fMP4, Opus and
//!   H.264), put after their init segment, are read by Debian's `ffprobe` (a 1280×720 H.264
//!   track and an Opus one) and `ffmpeg` decodes a picture with each colour in its tile.
//!
//! Driving baresip 1.0's video headless: `video_source avformat,FILE` reads the `.y4m`
//! (FFmpeg's demuxer), `video_display fakevideo,nil` takes what it decodes without a window,
//! `video_codecs=H264` in the account keeps the offer to H.264 (`avcodec`: modes 0 and 1),
//! and commands reach it while it runs through the `cons` module (a UDP datagram holding the
//! command line, `/snapshot_recv PATH`). At the end a browser shares its screen: the
//! terminal's large tile shows it.

use crate::baresip::{Baresip, baresip_modules, write_tone};
use crate::browser::{BrowserMember, browser_ready, repo};
use crate::common::{Db, TestServer, start_with};
use crate::phone::{Phone, sdp_address};
use crate::video::{
    BLUE, Colour, GREEN, RED, composed, conference, probe, tile_colours, tiles_of, until,
    write_y4m_of,
};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// The pixels of a PNG as RGB, and its size.
fn read_png(path: &Path) -> Option<(Vec<u8>, usize, usize)> {
    let file = std::fs::File::open(path).ok()?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().ok()?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).ok()?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let rgb = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .flat_map(|p| [p[0], p[1.min(channels - 1)], p[2.min(channels - 1)]])
        .collect();
    Some((rgb, w, h))
}

/// CPU time (ticks) of this process's threads named `name`, summed.
fn thread_ticks(name: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter_map(|stat| {
            // after the command's closing parenthesis: state is field 3, utime 14, stime 15
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sip_video_terminal_and_two_browsers_see_each_other() {
    if !browser_ready() {
        return;
    }
    let Some(modules) = baresip_modules() else {
        return;
    };
    if !modules.join("avcodec.so").exists() {
        eprintln!("skipped: baresip's H.264 (Debian package baresip-ffmpeg) is not installed");
        return;
    }
    let s = start_with(Db::Sqlite, "sip_video", |settings| {
        settings.web_dir = repo().join("web/dist");
    })
    .await
    .expect("server");
    let admin = s.admin().await;
    let room = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8410", "name": "Video desk" }),
        )
        .await;
    room.expect(201);
    let room_id = room.id();
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("quiet.wav");
    write_tone(&wav, 300.0, 48_000, 1, 90);
    let mut pages = Vec::new();
    let mut ids = Vec::new();
    for (name, rgb) in [("Ada", RED), ("Bo", GREEN)] {
        let camera = dir.path().join(format!("{name}.y4m"));
        write_y4m_of(&camera, rgb, (960, 540), 15, 3);
        let mut page = BrowserMember::with_camera(&s.base, &wav, &camera, "en");
        ids.push(u64::from(
            page.join("8410", name, None).await.expect("joins"),
        ));
        pages.push(page);
    }

    // the terminal: a blue camera for a minute and a half, PCMU audio
    let camera = dir.path().join("terminal.y4m");
    write_y4m_of(&camera, BLUE, (320, 180), 10, 900);
    let phone_wav = dir.path().join("phone.wav");
    write_tone(&phone_wav, 500.0, 8000, 1, 90);
    let cons_port = crate::common::free_port();
    let sip = s.running.as_ref().expect("running").sip.udp;
    let extra = format!(
        "video_source avformat,{camera}\n\
         video_display fakevideo,nil\n\
         video_size 320x180\n\
         video_fps 10\n\
         video_bitrate 300000\n\
         cons_listen 127.0.0.1:{cons_port}\n\
         module avcodec.so\n\
         module avformat.so\n\
         module fakevideo.so\n\
         module snapshot.so\n\
         module cons.so\n",
        camera = camera.display(),
    );
    let mut terminal = Baresip::start_with(
        &modules,
        "terminal",
        "<sip:terminal@127.0.0.1>;regint=0;audio_codecs=PCMU;video_codecs=H264",
        Some(&phone_wav),
        120,
        &[format!("/dial sip:8410@{sip}")],
        &extra,
    );

    // the terminal joins: its member id is the third
    let mut terminal_id = None;
    for _ in 0..60 {
        let live = conference(&s, &admin, &room_id).await;
        terminal_id = live["members"].as_array().and_then(|m| {
            m.iter()
                .filter_map(|m| m["id"].as_u64())
                .find(|id| !ids.contains(id))
        });
        if terminal_id.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let t = terminal_id.unwrap_or_else(|| panic!("the terminal joins:\n{}", terminal.log()));
    let [a, b] = [ids[0], ids[1]];
    let colour_of = |m: u64| match m {
        m if m == a => Colour::Red,
        m if m == b => Colour::Green,
        m if m == t => Colour::Blue,
        _ => Colour::Other,
    };

    // the browsers see the terminal's camera (H.264 from baresip, through the SFU) in its tile
    for (i, page) in pages.iter_mut().enumerate() {
        let me = ids[i];
        let seen = until(page, "the terminal's camera on a page", |tiles| {
            tiles
                .iter()
                .filter(|(m, ..)| m.is_some_and(|m| m != me))
                .all(|(m, _, _, c)| *c == m.map(colour_of))
                && tiles.iter().any(|(m, ..)| *m == Some(t))
        })
        .await;
        eprintln!("page {i} sees {seen:?}");
    }

    // the composed picture: every camera in its tile, the terminal's decoded by openh264
    let seen = composed(&s, &admin, &room_id, |tiles| {
        tiles.iter().filter(|(m, _)| m.is_some()).count() == 3
            && tiles.iter().all(|(m, c)| match m {
                Some(m) => *c == Some(colour_of(*m)),
                None => *c == Some(Colour::Other),
            })
    })
    .await;
    eprintln!("the composed picture: {seen:?}");

    // the terminal receives the composed picture: its snapshot shows each tile's colour
    let live = conference(&s, &admin, &room_id).await;
    let tiles = tiles_of(&live);
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("a socket");
    let mut last = Vec::new();
    let mut ok = false;
    for attempt in 0..40 {
        let shot = dir.path().join(format!("snapshot-{attempt}.png"));
        let line = format!("/snapshot_recv {}\n", shot.display());
        udp.send_to(line.as_bytes(), ("127.0.0.1", cons_port))
            .await
            .expect("send to baresip's console");
        tokio::time::sleep(Duration::from_millis(750)).await;
        let Some((rgb, w, h)) = read_png(&shot) else {
            continue;
        };
        assert_eq!((w, h), (1280, 720), "its level (3.1) takes 720p");
        last = tile_colours(&rgb, (w, h), &tiles);
        ok = last.iter().filter(|(m, ..)| m.is_some()).count() == 3
            && last.iter().all(|(m, c)| match m {
                Some(m) => *c == Some(colour_of(*m)),
                None => *c == Some(Colour::Other),
            });
        if ok {
            break;
        }
    }
    assert!(
        ok,
        "the terminal's picture shows every camera in its tile: {last:?}\n{}",
        terminal.log()
    );
    eprintln!("the terminal sees {last:?}");

    // what the room's composer costs (2×2, three cameras decoded, one 720p encode at 30 fps):
    // a figure for docs/performance.md, not asserted
    let ticks = thread_ticks("composer");
    let start = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let used = thread_ticks("composer") - ticks;
    let hz = 100.0; // USER_HZ on Linux
    eprintln!(
        "the composer thread used {:.0} % of a core (debug build: see docs/performance.md)",
        used as f64 / hz / start.elapsed().as_secs_f64() * 100.0
    );

    // the live stream shows the layout: its segments after the init segment make an MP4 that
    // ffprobe and ffmpeg read
    let started = s
        .post(
            &format!("/conferences/{room_id}/stream/start"),
            &admin,
            json!({ "password": "4242" }),
        )
        .await;
    started.expect(200);
    let playlist = started.body["playlist"]
        .as_str()
        .expect("a playlist")
        .to_owned();
    let get = |path: String| {
        let http = s.http.clone();
        let url = format!("{}{path}", s.base);
        async move {
            let r = http.get(url).send().await.expect("fetch");
            assert_eq!(r.status(), 200, "{path}");
            r.bytes().await.expect("body").to_vec()
        }
    };
    let dir_url = playlist.trim_end_matches("index.m3u8").to_owned();
    let mut stream_ok = None;
    for attempt in 0..20 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let text = String::from_utf8(get(format!("{playlist}?l=test")).await).expect("text");
        let names: Vec<&str> = text.lines().filter(|l| l.ends_with(".m4s")).collect();
        if names.len() < 2 {
            continue;
        }
        let mut file = get(format!("{dir_url}init.mp4")).await;
        // from the second segment: the first may hold no picture yet
        for name in &names[1..] {
            file.extend(get(format!("{dir_url}{name}")).await);
        }
        let path = dir.path().join(format!("stream-{attempt}.mp4"));
        std::fs::write(&path, &file).expect("write the stream");
        let (probed, _) = probe(&path);
        let picture = dir.path().join(format!("stream-{attempt}.png"));
        let decoded = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&path)
            .args(["-an", "-update", "1", "-f", "image2"])
            .arg(&picture)
            .output()
            .expect("ffmpeg runs");
        let seen = read_png(&picture).map(|(rgb, w, h)| tile_colours(&rgb, (w, h), &tiles));
        let good = seen.as_ref().is_some_and(|seen| {
            seen.iter().all(|(m, c)| match m {
                Some(m) => *c == Some(colour_of(*m)),
                None => *c == Some(Colour::Other),
            })
        });
        stream_ok = Some((
            probed,
            seen,
            String::from_utf8_lossy(&decoded.stderr).to_string(),
        ));
        if good {
            break;
        }
    }
    let (probed, seen, errors) = stream_ok.expect("the stream has segments");
    assert!(probed.contains("h264,1280,720"), "{probed}");
    assert!(probed.contains("opus"), "{probed}");
    let seen = seen.unwrap_or_else(|| panic!("ffmpeg decoded no picture: {errors}"));
    assert!(
        seen.iter().all(|(m, c)| match m {
            Some(m) => *c == Some(colour_of(*m)),
            None => *c == Some(Colour::Other),
        }),
        "the stream's picture: {seen:?} ({errors})"
    );
    eprintln!(
        "the stream shows {seen:?}; ffprobe: {}",
        probed.replace('\n', " ")
    );

    // Ada (red camera) shares her screen (Chromium's fake one is green): the terminal's
    // large tile shows it
    pages[0].ask("click join-share").await;
    let mut shared = Vec::new();
    for attempt in 0..40 {
        let live = conference(&s, &admin, &room_id).await;
        let tiles = tiles_of(&live);
        let shot = dir.path().join(format!("share-{attempt}.png"));
        let line = format!("/snapshot_recv {}\n", shot.display());
        udp.send_to(line.as_bytes(), ("127.0.0.1", cons_port))
            .await
            .expect("send to baresip's console");
        tokio::time::sleep(Duration::from_millis(750)).await;
        if let Some((rgb, w, h)) = read_png(&shot) {
            shared = tile_colours(&rgb, (w, h), &tiles);
            if live["layout"]["sharer"] == a
                && shared.first() == Some(&(Some(a), Some(Colour::Green)))
            {
                break;
            }
        }
    }
    assert_eq!(
        shared.first(),
        Some(&(Some(a), Some(Colour::Green))),
        "Ada's screen (green, not her red camera) large on the terminal: {shared:?}"
    );
    eprintln!("the terminal sees Ada's screen large: {shared:?}");

    let log = terminal.quit(Duration::from_secs(15)).await;
    assert!(log.contains("H264"), "the call's video was H.264:\n{log}");
    for page in pages {
        page.quit().await;
    }
}

fn sip(s: &TestServer) -> std::net::SocketAddr {
    s.running.as_ref().expect("running").sip.udp
}

/// The port of the first `m=video` section of an SDP body (0 when refused or absent).
fn video_port(sdp: &[u8]) -> u16 {
    String::from_utf8_lossy(sdp)
        .lines()
        .find_map(|l| l.strip_prefix("m=video "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// A softphone that called audio-only turns its camera on (a re-INVITE offering H.264): the
/// server answers audio as before, then offers video on a port pair of the call's own by a
/// re-INVITE of its own; once answered, the composed picture flows to the phone as H.264 RTP
/// starting with a keyframe. Offering again does not take another port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_softphone_turns_its_camera_on_mid_call() {
    let s = start_with(Db::Sqlite, "sip_video_reinvite", |_| {})
        .await
        .expect("server");
    let admin = s.admin().await;
    s.post(
        "/rooms",
        &admin,
        json!({ "number": "8411", "name": "Escalation" }),
    )
    .await
    .expect(201);
    let mut phone = Phone::on(sip(&s), "127.0.0.1", "escalate").await;
    assert_eq!(phone.dial("8411", None, "sendrecv").await, 200);
    let camera = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("a video socket");
    let at = camera.local_addr().expect("addr");

    let first = phone.reinvite_with_video(at).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        video_port(&first.body),
        0,
        "answered audio-only first: {}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(
        Some(sdp_address(&first.body)),
        phone.remote_rtp,
        "audio unchanged"
    );
    let offer = phone
        .answer_reinvite(Duration::from_secs(5), at)
        .await
        .expect("the server offers video back by re-INVITE");
    let port = video_port(&offer);
    assert!(port != 0, "{}", String::from_utf8_lossy(&offer));
    let text = String::from_utf8_lossy(&offer).to_string();
    assert!(text.contains("H264/90000"), "{text}");

    // the composed picture (an empty room's, dark) comes as H.264 RTP from that port; the
    // first picture starts with its parameter sets or an IDR
    let mut buf = vec![0u8; 2048];
    let mut packets = 0;
    let mut keyframe = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while packets < 60 {
        let Ok(Ok((n, from))) = tokio::time::timeout_at(deadline, camera.recv_from(&mut buf)).await
        else {
            break;
        };
        assert_eq!(from.port(), port, "the video comes from the offered port");
        if n > 13 && buf[0] >> 6 == 2 {
            packets += 1;
            let nal = buf[12] & 0x1f;
            let inner = if nal == 28 { buf[13] & 0x1f } else { nal };
            keyframe |= matches!(inner, 5 | 7);
        }
    }
    assert!(
        packets >= 60 && keyframe,
        "{packets} RTP packets, keyframe {keyframe}"
    );

    // offering again: answered with the same port now, no new offer from the server
    let again = phone.reinvite_with_video(at).await;
    assert_eq!(again.status, 200);
    assert_eq!(video_port(&again.body), port);
    assert!(
        phone
            .answer_reinvite(Duration::from_secs(1), at)
            .await
            .is_none(),
        "no second offer"
    );
    assert_eq!(phone.hang_up().await, 200);
    s.stop().await;
}
