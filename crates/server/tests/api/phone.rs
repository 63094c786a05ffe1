//! A scriptable SIP phone for media tests: it can call from any loopback address, name any
//! address in its SDP, send tones or nothing, move its RTP to another socket mid-call, share
//! a socket with another phone, and keeps what it receives apart by the sender's SSRC.

use conclave_media::codec::g711::{decode_ulaw, encode_ulaw};
use conclave_media::dsp::{goertzel_power, tone};
use conclave_sip::{Limits, Message, parse_datagram};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

/// Goertzel power of a tone at amplitude 8000 heard in full (AMP²/4 = 16e6); what counts as
/// heard, and what as not heard.
pub const HEARD: f64 = 1.0e6;
pub const NOT_HEARD: f64 = 3.0e4;

pub struct Phone {
    pub sip: UdpSocket,
    pub rtp: Arc<UdpSocket>,
    server: SocketAddr,
    pub tag: String,
    to_tag: String,
    room: String,
    cseq: u32,
    /// Where the server wants our RTP (from its SDP answer).
    pub remote_rtp: Option<SocketAddr>,
    pub ssrc: u32,
    seq: u16,
    ts: u32,
    pos: usize,
    /// What arrived, decoded, by the server's SSRC.
    pub heard: HashMap<u32, Vec<i16>>,
    /// RTP packets that arrived.
    pub packets: usize,
    /// Through a proxy that record-routes (Kamailio): the server's Contact and the route
    /// set, for requests within the call.
    in_dialog: Option<(String, Vec<String>)>,
}

impl Phone {
    /// A phone whose SIP and RTP sockets are on `ip` (any 127.x.y.z).
    pub async fn on(server: SocketAddr, ip: &str, tag: &str) -> Phone {
        let rtp = Arc::new(UdpSocket::bind((ip, 0)).await.expect("bind rtp"));
        Phone::sharing(server, ip, tag, rtp).await
    }

    /// A phone that uses `rtp` (perhaps another phone's socket: two phones behind one address).
    pub async fn sharing(server: SocketAddr, ip: &str, tag: &str, rtp: Arc<UdpSocket>) -> Phone {
        Phone {
            sip: UdpSocket::bind((ip, 0)).await.expect("bind sip"),
            rtp,
            server,
            tag: tag.into(),
            to_tag: String::new(),
            room: String::new(),
            cseq: 1,
            remote_rtp: None,
            ssrc: tag
                .bytes()
                .fold(0x5eed_0000u32, |h, b| h.rotate_left(7) ^ u32::from(b)),
            seq: 1000,
            ts: 160_000,
            pos: 0,
            heard: HashMap::new(),
            packets: 0,
            in_dialog: None,
        }
    }

    fn request(&self, method: &str, cseq: u32, body: &str) -> String {
        let sip = self.sip.local_addr().expect("addr");
        let to_tag = if self.to_tag.is_empty() {
            String::new()
        } else {
            format!(";tag={}", self.to_tag)
        };
        let (target, routes) = match (&self.in_dialog, to_tag.is_empty()) {
            (Some((contact, routes)), false) => (
                contact.clone(),
                routes
                    .iter()
                    .map(|r| format!("Route: {r}\r\n"))
                    .collect::<String>(),
            ),
            _ => (format!("sip:{}@{}", self.room, self.server), String::new()),
        };
        let content_type = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {sip};branch=z9hG4bK{tag}{method}{cseq};rport\r\n\
             {routes}Max-Forwards: 70\r\nFrom: <sip:{tag}@{ip}>;tag={tag}\r\nTo: <sip:{room}@{ip}>{to_tag}\r\n\
             Call-ID: {tag}@phone\r\nCSeq: {cseq} {method}\r\nContact: <sip:{tag}@{sip}>\r\n{content_type}\
             Content-Length: {len}\r\n\r\n{body}",
            room = self.room,
            tag = self.tag,
            ip = sip.ip(),
            len = body.len(),
        )
    }

    /// Sends a request and waits for its final response: only one of this call and this
    /// CSeq counts (a socket reused from an earlier call may still receive that call's
    /// retransmitted answers). Over UDP a request can be lost (a flooded socket drops), so
    /// it is sent again as RFC 3261's timers A/E say — 0.5 s, doubling up to 4 s — until
    /// any answer to it arrives.
    async fn transact(&mut self, request: String) -> conclave_sip::Response {
        let (call_id, cseq) = (format!("{}@phone", self.tag), request_cseq(&request));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut interval = Duration::from_millis(500);
        let mut resend_at = tokio::time::Instant::now();
        let mut answered = false;
        let mut buf = vec![0u8; 65_536];
        loop {
            let now = tokio::time::Instant::now();
            if !answered && now >= resend_at {
                self.sip
                    .send_to(request.as_bytes(), self.server)
                    .await
                    .expect("send");
                resend_at = now + interval;
                interval = (interval * 2).min(Duration::from_secs(4));
            }
            let wake = if answered {
                deadline
            } else {
                resend_at.min(deadline)
            };
            let received = tokio::time::timeout_at(wake, self.sip.recv_from(&mut buf)).await;
            let Ok(received) = received else {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "an answer within 10 s"
                );
                continue;
            };
            let (n, _) = received.expect("recv");
            if let Ok(Message::Response(r)) = parse_datagram(&buf[..n], &Limits::default())
                && r.headers.call_id() == Some(call_id.as_str())
                && r.headers.cseq().is_ok_and(|c| Some(c.seq) == cseq)
            {
                if r.status >= 200 {
                    return r;
                }
                answered = true;
            }
        }
    }

    /// Calls `room`, offering PCMU; the SDP names `sdp` (default: our RTP socket) with this
    /// direction. ACKs a 2xx. Returns the final status.
    pub async fn dial(&mut self, room: &str, sdp: Option<SocketAddr>, direction: &str) -> u16 {
        self.room = room.into();
        let at = sdp.unwrap_or_else(|| self.rtp.local_addr().expect("addr"));
        let body = format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-15\r\na=ptime:20\r\na={direction}\r\n",
            ip = at.ip(),
            port = at.port()
        );
        let response = self.transact(self.request("INVITE", 1, &body)).await;
        if response.status == 200 {
            let to = response.headers.to().expect("To");
            self.to_tag = to
                .params
                .get("tag")
                .flatten()
                .unwrap_or_default()
                .to_string();
            self.remote_rtp = Some(sdp_address(&response.body));
            let routes = response
                .headers
                .routes(&conclave_sip::message::HeaderName::RecordRoute)
                .unwrap_or_default();
            let contact = response
                .headers
                .get(&conclave_sip::message::HeaderName::Contact)
                .map(|c| {
                    c.trim()
                        .trim_start_matches('<')
                        .split('>')
                        .next()
                        .unwrap_or("")
                        .to_owned()
                });
            self.in_dialog = match contact {
                // a UAC's route set is the Record-Route list reversed
                Some(contact) if !routes.is_empty() => Some((
                    contact,
                    routes.iter().rev().map(|r| r.to_string()).collect(),
                )),
                _ => None,
            };
            let ack = self.request("ACK", 1, "");
            self.sip
                .send_to(ack.as_bytes(), self.server)
                .await
                .expect("ack");
        }
        response.status
    }

    /// Our SDP: PCMU on our RTP socket and, with `video`, H.264 (packetization mode 1,
    /// level 3.1) there.
    fn sdp_with_video(&self, video: Option<SocketAddr>) -> String {
        let at = self.rtp.local_addr().expect("addr");
        let mut body = format!(
            "v=0\r\no=- 1 2 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n",
            ip = at.ip(),
            port = at.port()
        );
        if let Some(v) = video {
            body.push_str(&format!(
                "m=video {} RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
                 a=fmtp:96 profile-level-id=42e01f;packetization-mode=1\r\na=rtcp-fb:96 nack pli\r\na=sendrecv\r\n",
                v.port()
            ));
        }
        body
    }

    /// A re-INVITE in the call offering PCMU and H.264 video to `video` (a softphone
    /// turning its camera on); ACKs a 2xx. The final response.
    pub async fn reinvite_with_video(&mut self, video: SocketAddr) -> conclave_sip::Response {
        self.cseq += 1;
        let body = self.sdp_with_video(Some(video));
        let response = self
            .transact(self.request("INVITE", self.cseq, &body))
            .await;
        if response.status == 200 {
            let ack = self.request("ACK", self.cseq, "");
            self.sip
                .send_to(ack.as_bytes(), self.server)
                .await
                .expect("ack");
        }
        response
    }

    /// Waits up to `within` for the server's re-INVITE and answers it 200 with PCMU and,
    /// when it offers video, H.264 to `video`; the offer's body, if one came.
    pub async fn answer_reinvite(&self, within: Duration, video: SocketAddr) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65_536];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = tokio::time::timeout_at(deadline, self.sip.recv_from(&mut buf)).await;
            let Ok(Ok((n, from))) = got else {
                return None;
            };
            if let Ok(Message::Request(r)) = parse_datagram(&buf[..n], &Limits::default())
                && r.method.as_str() == "INVITE"
            {
                let offers_video = String::from_utf8_lossy(&r.body).contains("m=video ");
                let mut ok = r.response(200, "OK", None);
                let sip = self.sip.local_addr().expect("addr");
                ok.headers.push(
                    conclave_sip::message::HeaderName::Contact,
                    format!("<sip:{}@{sip}>", self.tag),
                );
                ok.headers.push(
                    conclave_sip::message::HeaderName::ContentType,
                    "application/sdp",
                );
                ok.body = self
                    .sdp_with_video(offers_video.then_some(video))
                    .into_bytes();
                let _ = self.sip.send_to(&ok.to_bytes(), from).await;
                return Some(r.body.to_vec());
            }
        }
    }

    pub async fn hang_up(&mut self) -> u16 {
        self.cseq += 1;
        self.transact(self.request("BYE", self.cseq, ""))
            .await
            .status
    }

    /// Waits up to `within` for the server's BYE (answering it); false if none came.
    pub async fn bye_within(&self, within: Duration) -> bool {
        let mut buf = vec![0u8; 65_536];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = tokio::time::timeout_at(deadline, self.sip.recv_from(&mut buf)).await;
            let Ok(Ok((n, from))) = got else {
                return false;
            };
            if let Ok(Message::Request(r)) = parse_datagram(&buf[..n], &Limits::default())
                && r.method.as_str() == "BYE"
            {
                let ok = r.response(200, "OK", None).to_bytes();
                let _ = self.sip.send_to(&ok, from).await;
                return true;
            }
        }
    }

    /// One 20 ms RTP packet of `freq` (0: silence) to `to`, from our socket.
    pub fn packet(&mut self, freq: f64) -> Vec<u8> {
        let pcm = tone(freq, 8000, 160, 8000.0, self.pos);
        self.pos += 160;
        let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        packet[2..4].copy_from_slice(&self.seq.to_be_bytes());
        packet[4..8].copy_from_slice(&self.ts.to_be_bytes());
        packet[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        encode_ulaw(&pcm, &mut packet);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        packet
    }

    /// Takes in what arrived on our socket (without waiting).
    pub fn collect(&mut self) {
        let mut buf = [0u8; 2048];
        while let Ok((n, _)) = self.rtp.try_recv_from(&mut buf) {
            take(&buf[..n], &mut self.heard, &mut self.packets);
        }
    }

    pub fn clear(&mut self) {
        self.heard.clear();
        self.packets = 0;
    }

    /// All that was heard, whoever sent it.
    pub fn all_heard(&self) -> Vec<i16> {
        let mut streams: Vec<&Vec<i16>> = self.heard.values().collect();
        streams.sort_by_key(|s| std::cmp::Reverse(s.len()));
        streams.first().map(|s| (*s).clone()).unwrap_or_default()
    }

    /// Goertzel power of `freq` in what was heard (the longest stream).
    pub fn power(&self, freq: f64) -> f64 {
        let heard = self.all_heard();
        let tail = &heard[heard.len().saturating_sub(8000)..];
        if tail.is_empty() {
            return 0.0;
        }
        goertzel_power(tail, 8000, freq)
    }
}

/// The sequence number of a request's CSeq header.
fn request_cseq(request: &str) -> Option<u32> {
    request
        .lines()
        .find_map(|l| l.strip_prefix("CSeq: "))
        .and_then(|v| v.split(' ').next())
        .and_then(|n| n.parse().ok())
}

/// Decodes a PCMU RTP packet into its sender's stream.
fn take(data: &[u8], heard: &mut HashMap<u32, Vec<i16>>, packets: &mut usize) {
    if data.len() > 12 && data[0] >> 6 == 2 && data[1] & 0x7f == 0 {
        let ssrc = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let header = 12 + 4 * usize::from(data[0] & 0x0f);
        if data.len() > header {
            *packets += 1;
            decode_ulaw(&data[header..], heard.entry(ssrc).or_default());
        }
    }
}

/// Every phone sends a frame of its tone (`None`: nothing at all) each 20 ms for `frames`,
/// and collects what it receives.
pub async fn talk(phones: &mut [&mut Phone], tones: &[Option<f64>], frames: usize) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..frames {
        tick.tick().await;
        for (phone, freq) in phones.iter_mut().zip(tones) {
            if let (Some(freq), Some(to)) = (freq, phone.remote_rtp) {
                let packet = phone.packet(*freq);
                let _ = phone.rtp.send_to(&packet, to).await;
            }
            phone.collect();
        }
    }
}

/// The address of the first audio stream of an SDP body.
pub fn sdp_address(sdp: &[u8]) -> SocketAddr {
    let text = String::from_utf8_lossy(sdp);
    let ip = text
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 ").or(l.strip_prefix("c=IN IP6 ")))
        .expect("c= line")
        .trim();
    let port = text
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .expect("m= line")
        .parse::<u16>()
        .expect("port");
    SocketAddr::new(ip.parse().expect("ip"), port)
}
