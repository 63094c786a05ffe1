//! Video between browsers, end to end: three Chromiums whose fake cameras show solid red,
//! green and blue (`.y4m` files written here) join one room; the SFU forwards each camera
//! (VP8 simulcast, three layers) to the tiles of the layout the chair sets from the API, and
//! each page reads the colour and size of the picture in every tile.
//!
//! - Layout 4: each page sees the other two in their tiles, in the colours of their cameras.
//! - Layout 1+7 with a member pinned to the large tile: every other page shows that member
//!   there at a layer at least twice as wide as a small tile's (960 and 240 px when the
//!   machine is idle: the full and the quarter layer).
//! - Polling on the last tile every 2 s over two members: a third page sees their colours
//!   take turns there.
//! - A page shares its screen: the large tile is its screen on the other pages; the chair
//!   stops the share from the API and the large tile is a camera again.
//! - The composed picture (what phones and recordings show, `getComposedPicture`): each
//!   camera's colour in its tile of the 2×2 canvas, the fourth tile dark; in 1+7, the pinned
//!   member large.
//! - A guest cannot set the layout; a bad layout, tile or interval is refused in words.
//! - The chair records it all: the recording has a video track, and its MP4 (the layout's
//!   pictures and the mix) is read by Debian's `ffprobe` and decoded by `ffmpeg`: pictures
//!   of layout 4 with each colour in its tile, of 1+7 with Cy large, the polled tile red and
//!   green in turn, and Bo's screen large.

use crate::baresip::write_tone;
use crate::browser::{BrowserMember, browser_ready, repo};
use crate::common::{Db, TestServer, start_with};
use conclave_media::video::TileSize;
use conclave_media::video::compose::geometry;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// A solid-colour camera: a few frames of one colour (Y, Cb, Cr), looped by Chromium.
fn write_y4m(path: &Path, rgb: (u8, u8, u8)) {
    write_y4m_of(path, rgb, (960, 540), 15, 3);
}

/// A solid-colour `.y4m` of this size, frame rate and length.
pub(crate) fn write_y4m_of(
    path: &Path,
    (y, u, v): (u8, u8, u8),
    (w, h): (usize, usize),
    fps: u32,
    frames: usize,
) {
    let mut data = format!("YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n").into_bytes();
    for _ in 0..frames {
        data.extend_from_slice(b"FRAME\n");
        data.extend(std::iter::repeat_n(y, w * h));
        data.extend(std::iter::repeat_n(u, w * h / 4));
        data.extend(std::iter::repeat_n(v, w * h / 4));
    }
    std::fs::write(path, data).expect("write the camera file");
}

pub(crate) const RED: (u8, u8, u8) = (76, 85, 255);
pub(crate) const GREEN: (u8, u8, u8) = (150, 44, 21);
pub(crate) const BLUE: (u8, u8, u8) = (29, 255, 107);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Colour {
    Red,
    Green,
    Blue,
    /// A whiteboard's paper.
    White,
    Other,
}

pub(crate) fn colour(rgb: &Value) -> Option<Colour> {
    let c: Vec<i64> = rgb.as_array()?.iter().filter_map(Value::as_i64).collect();
    let [r, g, b] = c[..] else { return None };
    Some(if r > 200 && g > 200 && b > 200 {
        Colour::White
    } else if r > 180 && g < 90 && b < 90 {
        Colour::Red
    } else if g > 180 && r < 90 && b < 90 {
        Colour::Green
    } else if b > 180 && r < 90 && g < 90 {
        Colour::Blue
    } else {
        Colour::Other
    })
}

/// A page's tiles: (member, screen, picture width, colour).
async fn tiles(page: &mut BrowserMember) -> Vec<(Option<u64>, bool, u64, Option<Colour>)> {
    let line = page.ask("tiles").await;
    let list: Value = serde_json::from_str(line.trim_start_matches("tiles ")).expect("json");
    list.as_array()
        .expect("tiles")
        .iter()
        .map(|t| {
            (
                t["member"].as_u64(),
                t["screen"].as_bool().unwrap_or(false),
                t["width"].as_u64().unwrap_or(0),
                colour(&t["rgb"]),
            )
        })
        .collect()
}

/// Waits (20 s at most) until the page's tiles satisfy `ok`; the last tiles either way.
pub(crate) async fn until(
    page: &mut BrowserMember,
    what: &str,
    ok: impl Fn(&[(Option<u64>, bool, u64, Option<Colour>)]) -> bool,
) -> Vec<(Option<u64>, bool, u64, Option<Colour>)> {
    let mut last = Vec::new();
    for _ in 0..80 {
        last = tiles(page).await;
        if ok(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{what}: the tiles were {last:?}");
}

/// Fetches the composed picture (a JPEG) until its tiles — (member, colour at the centre) —
/// satisfy `ok` (30 s at most); those tiles.
pub(crate) async fn composed(
    s: &TestServer,
    admin: &str,
    room_id: &str,
    ok: impl Fn(&[(Option<u64>, Option<Colour>)]) -> bool,
) -> Vec<(Option<u64>, Option<Colour>)> {
    let mut last = Vec::new();
    for _ in 0..60 {
        let live = conference(s, admin, room_id).await;
        let tiles = tiles_of(&live);
        if let Some((pixels, size)) = picture(s, admin, room_id).await {
            last = tile_colours(&pixels, size, &tiles);
            if ok(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the composed picture's tiles were {last:?}");
}

/// The composed picture (`getComposedPicture`) as RGB, when there is one.
async fn picture(s: &TestServer, admin: &str, room_id: &str) -> Option<(Vec<u8>, (usize, usize))> {
    let response = s
        .http
        .get(format!("{}/api/v1/conferences/{room_id}/picture", s.base))
        .bearer_auth(admin)
        .send()
        .await
        .expect("picture");
    if response.status() != 200 {
        return None;
    }
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/jpeg")
    );
    let bytes = response.bytes().await.expect("bytes");
    let mut decoder = jpeg_decoder::Decoder::new(&bytes[..]);
    let pixels = decoder.decode().expect("a JPEG");
    let info = decoder.info().expect("its size");
    Some((pixels, (usize::from(info.width), usize::from(info.height))))
}

/// A tile as a picture shows it: its member and the colour at its centre.
type Seen = (Option<u64>, Option<Colour>);

/// The mean colour of the middle half of tile `index` of a `w`×`h` RGB picture.
fn tile_mean(
    rgb: &[u8],
    (w, h): (usize, usize),
    tiles: &[(Option<u64>, TileSize)],
    index: usize,
) -> [i64; 3] {
    let sizes: Vec<TileSize> = tiles.iter().map(|t| t.1).collect();
    let r = geometry(&sizes, w, h)[index];
    let (mut sum, mut n) = ([0i64; 3], 0i64);
    for y in r.y + r.h / 4..r.y + r.h * 3 / 4 {
        for x in r.x + r.w / 4..r.x + r.w * 3 / 4 {
            let at = (y * w + x) * 3;
            for (c, s) in sum.iter_mut().enumerate() {
                *s += i64::from(rgb[at + c]);
            }
            n += 1;
        }
    }
    sum.map(|s| s / n.max(1))
}

/// The colour around a point of tile `index` (fractions of the tile) of a `w`×`h` RGB
/// picture: the mean of 5×5 pixels.
fn point_colour(
    rgb: &[u8],
    (w, h): (usize, usize),
    tiles: &[(Option<u64>, TileSize)],
    index: usize,
    (fx, fy): (f64, f64),
) -> Option<Colour> {
    let sizes: Vec<TileSize> = tiles.iter().map(|t| t.1).collect();
    let r = geometry(&sizes, w, h)[index];
    let (cx, cy) = (
        r.x + (r.w as f64 * fx) as usize,
        r.y + (r.h as f64 * fy) as usize,
    );
    let mut sum = [0i64; 3];
    for y in cy - 2..=cy + 2 {
        for x in cx - 2..=cx + 2 {
            for (c, s) in sum.iter_mut().enumerate() {
                *s += i64::from(rgb[(y * w + x) * 3 + c]);
            }
        }
    }
    colour(&json!(sum.map(|s| s / 25)))
}

/// What `ffprobe` reads of an MP4's streams, a line each: `codec,width,height`; and what
/// it said on stderr.
pub(crate) fn probe(path: &Path) -> (String, String) {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs (Debian package ffmpeg)");
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The size [`decoded_pictures`] scales to.
const FRAME: (usize, usize) = (320, 180);

/// The pictures of an MP4, two a second, decoded by `ffmpeg` to [`FRAME`] RGB.
fn decoded_pictures(path: &Path) -> Vec<Vec<u8>> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-an",
            "-vf",
            "fps=2,scale=320:180",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .expect("ffmpeg runs (Debian package ffmpeg)");
    assert!(
        out.status.success(),
        "ffmpeg decodes the recording: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(FRAME.0 * FRAME.1 * 3)
        .map(<[u8]>::to_vec)
        .collect()
}

/// The colour at the centre of each tile of a `w`×`h` RGB picture.
pub(crate) fn tile_colours(
    rgb: &[u8],
    (w, h): (usize, usize),
    tiles: &[(Option<u64>, TileSize)],
) -> Vec<(Option<u64>, Option<Colour>)> {
    let sizes: Vec<TileSize> = tiles.iter().map(|t| t.1).collect();
    geometry(&sizes, w, h)
        .iter()
        .zip(tiles)
        .map(|(r, (m, _))| {
            let at = ((r.y + r.h / 2) * w + r.x + r.w / 2) * 3;
            (*m, colour(&json!(rgb.get(at..at + 3))))
        })
        .collect()
}

/// The tiles of the meeting as the API tells them: (member, size).
pub(crate) fn tiles_of(live: &Value) -> Vec<(Option<u64>, TileSize)> {
    live["tiles"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| {
                    let size = match t["size"].as_str() {
                        Some("big") => TileSize::Big,
                        Some("medium") => TileSize::Medium,
                        _ => TileSize::Small,
                    };
                    (t["member"].as_u64(), size)
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) async fn conference(s: &TestServer, admin: &str, room_id: &str) -> Value {
    s.get(&format!("/conferences/{room_id}"), admin).await.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_see_each_other_in_the_chairs_layout_with_polling_and_a_shared_screen() {
    if !browser_ready() {
        return;
    }
    let s = start_with(Db::Sqlite, "video_sfu", |settings| {
        settings.web_dir = repo().join("web/dist");
    })
    .await
    .expect("server");
    let admin = s.admin().await;
    let room = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8400", "name": "Video room" }),
        )
        .await;
    room.expect(201);
    let room_id = room.id();
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("quiet.wav");
    write_tone(&wav, 300.0, 48_000, 1, 60);
    let mut pages = Vec::new();
    let mut ids = Vec::new();
    // Cy's page is in Chinese
    for (name, rgb, lang) in [("Ada", RED, "en"), ("Bo", GREEN, "en"), ("Cy", BLUE, "zh")] {
        let camera = dir.path().join(format!("{name}.y4m"));
        write_y4m(&camera, rgb);
        let mut page = BrowserMember::with_camera(&s.base, &wav, &camera, lang);
        ids.push(u64::from(
            page.join("8400", name, None).await.expect("joins"),
        ));
        pages.push(page);
    }
    let [a, b, c] = [ids[0], ids[1], ids[2]];
    let colour_of = |m: u64| match m {
        m if m == a => Colour::Red,
        m if m == b => Colour::Green,
        _ => Colour::Blue,
    };

    // layout 4 (the default): each page sees the other two in their own colours
    for (i, page) in pages.iter_mut().enumerate() {
        let me = ids[i];
        until(page, "the others' cameras in layout 4", |t| {
            t.len() == 4
                && t.iter()
                    .filter(|(m, ..)| m.is_some_and(|m| m != me))
                    .all(|(m, _, _, c)| *c == m.map(colour_of))
                && t.iter().filter(|(m, ..)| m.is_some()).count() == 3
        })
        .await;
    }

    // the composed picture (what phones and recordings will show): each camera's colour in
    // its tile, the empty fourth tile dark
    let seen = composed(&s, &admin, &room_id, |tiles| {
        tiles.len() == 4
            && tiles.iter().all(|(m, c)| match m {
                Some(m) => *c == Some(colour_of(*m)),
                None => *c == Some(Colour::Other),
            })
    })
    .await;
    eprintln!("the composed picture's tiles in layout 4: {seen:?}");

    // the chair records from here: the meeting has video, so the recording shows the layout
    let started = s
        .post(
            &format!("/conferences/{room_id}/recording/start"),
            &admin,
            json!({}),
        )
        .await;
    started.expect(200);
    let recording_id = started.body["recording_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a recording id: {}", started.body))
        .to_owned();
    let tiles_4 = tiles_of(&conference(&s, &admin, &room_id).await);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // a guest cannot choose the layout; bad choices are refused in words
    s.put(
        &format!("/conferences/{room_id}/layout"),
        &admin,
        json!({ "layout": "3x3" }),
    )
    .await
    .expect(422);
    s.put(
        &format!("/conferences/{room_id}/polling"),
        &admin,
        json!({ "tiles": [30], "interval_secs": 5 }),
    )
    .await
    .expect(409);
    s.put(
        &format!("/conferences/{room_id}/polling"),
        &admin,
        json!({ "tiles": [0], "interval_secs": 1 }),
    )
    .await
    .expect(409);
    let token = pages[1].ask("token").await;
    let token = token.trim_start_matches("token ").to_owned();
    s.post(
        "/join/me/actions",
        &token,
        json!({ "action": "set_layout", "layout": "1" }),
    )
    .await
    .expect(403);

    // 1+7 with Cy pinned large: the others see blue large at the full layer, small tiles at
    // the quarter layer
    s.put(
        &format!("/conferences/{room_id}/layout"),
        &admin,
        json!({ "layout": "1+7" }),
    )
    .await
    .expect(200);
    s.put(
        &format!("/conferences/{room_id}/members/{c}/pin"),
        &admin,
        json!({ "tile": 0 }),
    )
    .await
    .expect(200);
    // (Chromium lowers every layer's resolution when its CPU is busy: the large tile's layer
    // is compared with the small tile's, not with a size)
    let seen = until(&mut pages[0], "Cy large on Ada's page", |t| {
        let small = t
            .iter()
            .skip(1)
            .find(|(m, _, _, col)| *m == Some(b) && *col == Some(Colour::Green))
            .map(|(_, _, w, _)| *w);
        t.len() == 8
            && t[0].0 == Some(c)
            && t[0].3 == Some(Colour::Blue)
            && small.is_some_and(|w| w > 0 && t[0].2 >= 2 * w)
    })
    .await;
    eprintln!("Ada's tiles in 1+7: {seen:?}");
    let seen = composed(&s, &admin, &room_id, |tiles| {
        tiles.len() == 8
            && tiles[0] == (Some(c), Some(Colour::Blue))
            && tiles
                .iter()
                .all(|(m, col)| m.is_none_or(|m| *col == Some(colour_of(m))))
    })
    .await;
    eprintln!("the composed picture's tiles in 1+7: {seen:?}");
    let tiles_17 = tiles_of(&conference(&s, &admin, &room_id).await);
    let live = conference(&s, &admin, &room_id).await;
    assert_eq!(live["layout"]["kind"], "1+7", "{live}");
    assert_eq!(live["tiles"][0]["member"], c);

    // polling the last tile every 2 s over Ada and Bo: Cy's page sees red and green take turns
    s.put(
        &format!("/conferences/{room_id}/polling"),
        &admin,
        json!({ "tiles": [7], "interval_secs": 2, "members": [a, b] }),
    )
    .await
    .expect(200);
    let mut sequence: Vec<Colour> = Vec::new();
    for _ in 0..60 {
        let t = tiles(&mut pages[2]).await;
        // (a picture caught mid-switch, before the next member's keyframe, is neither)
        if let Some(col) = t.get(7).and_then(|t| t.3).filter(|c| *c != Colour::Other)
            && sequence.last() != Some(&col)
        {
            sequence.push(col);
        }
        if sequence.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("the polled tile on Cy's page: {sequence:?}");
    assert!(
        sequence.len() >= 3
            && sequence
                .iter()
                .all(|c| matches!(c, Colour::Red | Colour::Green)),
        "red and green in turn: {sequence:?}"
    );
    s.put(
        &format!("/conferences/{room_id}/polling"),
        &admin,
        json!({ "tiles": [] }),
    )
    .await
    .expect(200);

    // Bo shares a screen: the large tile is Bo's screen on Ada's page, not a camera
    pages[1].ask("click join-share").await;
    let seen = until(&mut pages[0], "Bo's screen large on Ada's page", |t| {
        // the fake screen is 1280 wide, the cameras 960
        t[0].0 == Some(b) && t[0].1 && t[0].2 >= 1200
    })
    .await;
    eprintln!("Ada's large tile while Bo shares: {:?}", seen[0]);
    // what the composer draws in the large tile while Bo shares (what the recording must show)
    let mut shared = None;
    for _ in 0..40 {
        let tiles = tiles_of(&conference(&s, &admin, &room_id).await);
        if let Some((rgb, size)) = picture(&s, &admin, &room_id).await
            && tiles[0].0 == Some(b)
            && tile_colours(&rgb, size, &tiles)[0].1 != Some(Colour::Blue)
        {
            shared = Some((tile_mean(&rgb, size, &tiles, 0), tiles));
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (screen_mean, tiles_share) = shared.expect("Bo's screen in the composed large tile");
    tokio::time::sleep(Duration::from_secs(2)).await;
    // what a user sees (docs/screenshots/video-{en,zh}.png)
    if let Some(shots) = std::env::var_os("CONCLAVE_SCREENSHOTS") {
        let shots = Path::new(&shots);
        until(&mut pages[2], "Bo's screen large on Cy's page", |t| {
            t[0].1 && t[0].2 >= 1200
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        pages[0]
            .ask(&format!("shot {}", shots.join("video-en.png").display()))
            .await;
        pages[2]
            .ask(&format!("shot {}", shots.join("video-zh.png").display()))
            .await;
    }
    assert_eq!(
        conference(&s, &admin, &room_id).await["layout"]["sharer"],
        b
    );
    // the chair ends the share: Cy (pinned) is large again, and Bo's page stops sending
    s.delete(&format!("/conferences/{room_id}/share"), &admin)
        .await
        .expect(200);
    until(&mut pages[0], "Cy large again", |t| {
        t[0].0 == Some(c) && !t[0].1 && t[0].3 == Some(Colour::Blue)
    })
    .await;
    let text = pages[1].ask("text join-share").await;
    assert!(text.contains("Share screen"), "{text}");

    // Ada presents a whiteboard: white paper, large on Bo's page and in the composed picture
    // (what SIP terminals and the recording show); she draws through its middle with the
    // black pen, and the middle is paper no more on both; she closes it and Cy is large again
    pages[0].ask("click join-whiteboard").await;
    until(&mut pages[1], "Ada's whiteboard large on Bo's page", |t| {
        t[0].0 == Some(a) && t[0].1 && t[0].3 == Some(Colour::White)
    })
    .await;
    composed(&s, &admin, &room_id, |t| {
        t[0] == (Some(a), Some(Colour::White))
    })
    .await;
    let drawn = pages[0].ask("draw 0.3 0.5 0.7 0.5").await;
    assert_eq!(drawn.trim(), "drawn");
    let seen = until(&mut pages[1], "Ada's stroke on Bo's page", |t| {
        t[0].0 == Some(a) && t[0].1 && t[0].3 == Some(Colour::Other)
    })
    .await;
    eprintln!("Bo's large tile after Ada's stroke: {:?}", seen[0]);
    composed(&s, &admin, &room_id, |t| {
        t[0] == (Some(a), Some(Colour::Other))
    })
    .await;
    // Cy, made a chair, draws on Ada's board from her own page with the red pen: the stroke
    // goes through the meeting to Ada's page, which draws it on the board, and so it is in
    // the picture everyone gets. Bo, a member, may not draw on it; a stroke out of bounds
    // is refused and says why.
    let bo_token = pages[1].ask("token").await;
    let bo_token = bo_token.trim().trim_start_matches("token ").to_owned();
    let stroke =
        json!({ "action": "draw", "stroke": { "pen": 1, "points": [[3000, 2500], [7000, 2500]] } });
    s.post("/join/me/actions", &bo_token, stroke.clone())
        .await
        .expect(403);
    s.post(
        &format!("/conferences/{room_id}/members/{c}/role"),
        &admin,
        json!({ "role": "chairman" }),
    )
    .await
    .expect(200);
    pages[2].ask("wait whiteboard-draw-over").await;
    pages[2].ask("click whiteboard-pen-1").await;
    let drawn = pages[2]
        .ask("draw 0.3 0.25 0.7 0.25 whiteboard-draw-over")
        .await;
    assert_eq!(drawn.trim(), "drawn");
    let cy_token = pages[2].ask("token").await;
    let cy_token = cy_token.trim().trim_start_matches("token ").to_owned();
    let bad = s
        .post(
            "/join/me/actions",
            &cy_token,
            json!({ "action": "draw", "stroke": { "pen": 1, "points": [[10_001, 0]] } }),
        )
        .await;
    bad.expect(422);
    assert_eq!(bad.body["errors"][0]["field"], "stroke", "{}", bad.body);
    let mut seen = None;
    for _ in 0..60 {
        let tiles = tiles_of(&conference(&s, &admin, &room_id).await);
        if let Some((pixels, size)) = picture(&s, &admin, &room_id).await {
            let at = point_colour(&pixels, size, &tiles, 0, (0.5, 0.25));
            seen = Some((tiles[0].0, at));
            if seen == Some((Some(a), Some(Colour::Red))) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        seen,
        Some((Some(a), Some(Colour::Red))),
        "Cy's red stroke on Ada's board in the composed picture"
    );
    if let Some(shots) = std::env::var_os("CONCLAVE_SCREENSHOTS") {
        let shots = Path::new(&shots);
        pages[0]
            .ask(&format!(
                "shot {}",
                shots.join("whiteboard-en.png").display()
            ))
            .await;
        pages[2]
            .ask(&format!(
                "shot {}",
                shots.join("whiteboard-zh.png").display()
            ))
            .await;
    }
    pages[0].ask("click join-whiteboard").await;
    until(&mut pages[1], "Cy large again after the whiteboard", |t| {
        t[0].0 == Some(c) && !t[0].1 && t[0].3 == Some(Colour::Blue)
    })
    .await;

    // the recording: a video track beside the audio ones, and an MP4 of the layout and the mix
    s.post(
        &format!("/conferences/{room_id}/recording/stop"),
        &admin,
        json!({}),
    )
    .await
    .expect(200);
    let mut detail = Value::Null;
    for _ in 0..100 {
        detail = s
            .get(&format!("/recordings/{recording_id}"), &admin)
            .await
            .body;
        if detail["recording"]["state"] == "finished" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(detail["recording"]["state"], "finished", "{detail}");
    let tracks = detail["tracks"].as_array().expect("tracks");
    let video = tracks
        .iter()
        .find(|t| t["kind"] == "video")
        .unwrap_or_else(|| panic!("a video track: {detail}"));
    assert!(
        video["duration_ms"].as_i64().unwrap_or(0) > 10_000,
        "{video}"
    );
    assert!(tracks.iter().any(|t| t["kind"] == "mix"), "{detail}");
    // its track is no audio; the video is for those who may see the recording
    s.get(
        &format!("/recordings/{recording_id}/tracks/{}/audio", video["track"]),
        &admin,
    )
    .await
    .expect(409);
    let response = s
        .http
        .get(format!("{}/api/v1/recordings/{recording_id}/video", s.base))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("video");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("video/mp4")
    );
    let mp4 = response.bytes().await.expect("the MP4");
    let path = dir.path().join("recording.mp4");
    std::fs::write(&path, &mp4).expect("write the recording");
    let (probed, said) = probe(&path);
    assert!(
        probed.contains("h264,1280,720") && probed.contains("opus"),
        "ffprobe reads the recording as {probed:?}: {said}"
    );
    let frames = decoded_pictures(&path);
    eprintln!(
        "the recording's MP4: {} bytes, {} pictures decoded at 2 a second",
        mp4.len(),
        frames.len()
    );
    let shows = |tiles: &[(Option<u64>, TileSize)], ok: &dyn Fn(&[Seen]) -> bool| {
        frames
            .iter()
            .position(|f| ok(&tile_colours(f, FRAME, tiles)))
    };
    let layout_4 = shows(&tiles_4, &|t| {
        t.len() == 4
            && t.iter().all(|(m, c)| match m {
                Some(m) => *c == Some(colour_of(*m)),
                None => *c == Some(Colour::Other),
            })
    });
    let layout_17 = shows(&tiles_17, &|t| {
        t.len() == 8
            && t[0] == (Some(c), Some(Colour::Blue))
            && t[1..7]
                .iter()
                .all(|(m, col)| m.is_none_or(|m| *col == Some(colour_of(m))))
    });
    let mut polled: Vec<Colour> = Vec::new();
    for f in &frames {
        if let Some(col) = tile_colours(f, FRAME, &tiles_17)[7].1
            && matches!(col, Colour::Red | Colour::Green)
            && polled.last() != Some(&col)
        {
            polled.push(col);
        }
    }
    let screen = frames.iter().position(|f| {
        let mean = tile_mean(f, FRAME, &tiles_share, 0);
        tile_colours(f, FRAME, &tiles_share)[0].1 != Some(Colour::Blue)
            && mean
                .iter()
                .zip(screen_mean)
                .all(|(a, b)| (a - b).abs() <= 30)
    });
    eprintln!(
        "in the recording: layout 4 at picture {layout_4:?}, 1+7 at {layout_17:?}, the polled \
         tile {polled:?}, Bo's screen (mean {screen_mean:?}) at {screen:?}"
    );
    assert!(layout_4.is_some(), "layout 4 with each colour in its tile");
    assert!(layout_17.is_some(), "1+7 with Cy large");
    assert!(layout_4 < layout_17, "layout 4 came first");
    assert!(
        polled.len() >= 3,
        "the polled tile red and green in turn: {polled:?}"
    );
    assert!(
        screen.is_some_and(|at| Some(at) > layout_17),
        "Bo's screen large after 1+7"
    );
    let board = frames
        .iter()
        .position(|f| tile_colours(f, FRAME, &tiles_share)[0].1 == Some(Colour::White));
    eprintln!("Ada's whiteboard in the recording at picture {board:?}");
    assert!(board > screen, "Ada's whiteboard large after Bo's screen");

    let live = conference(&s, &admin, &room_id).await;
    eprintln!("layout at the end: {}", live["layout"]);
    for page in pages {
        page.quit().await;
    }
    s.stop().await;
}

/// A template's and a booking's default layout: stored, checked, and the template's meeting
/// starts in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_starts_its_meeting_in_its_layout() {
    let s = crate::common::start(Db::Sqlite, "video_default_layout")
        .await
        .expect("server");
    let admin = s.admin().await;
    let room_id = s.room(&admin, "8410", "Board room").await;
    let desk = s
        .post(
            "/users",
            &admin,
            json!({
                "username": "desk", "display_name": "Desk phone", "password": "desk-password",
                "extension": "1002", "sip_password": "sip-secret-2",
            }),
        )
        .await
        .id();
    s.post(
        "/templates",
        &admin,
        json!({ "name": "Bad", "room_id": room_id, "settings": { "layout": "3x3" } }),
    )
    .await
    .expect_problem(422, Some("settings.layout"));
    let template = s
        .post(
            "/templates",
            &admin,
            json!({
                "name": "Board", "room_id": room_id, "settings": { "layout": "1+21" },
                "members": [{ "kind": "user", "user_id": desk, "role": "chairman" }],
            }),
        )
        .await;
    template.expect(201);
    assert_eq!(template.body["settings"]["layout"], "1+21");
    let sip = s.running.as_ref().expect("running").sip.udp;
    let _phone = crate::room_call::Phone::register(sip, "1002", "sip-secret-2").await;
    s.post(
        "/conferences",
        &admin,
        json!({ "template_id": template.id() }),
    )
    .await
    .expect(201);
    let live = s.get(&format!("/conferences/{room_id}"), &admin).await;
    assert_eq!(live.body["layout"]["kind"], "1+21", "{}", live.body);
    assert_eq!(live.body["tiles"].as_array().map(Vec::len), Some(22));
    s.post(&format!("/conferences/{room_id}/end"), &admin, json!({}))
        .await
        .expect(200);
    s.stop().await;
}
