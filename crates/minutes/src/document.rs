//! The minutes as documents to take away: Markdown, DOCX (WordprocessingML) and PDF. Each
//! line keeps its time, speaker, text and a link that plays exactly that utterance.
//! The PDF names the standard Chinese font (`STSong-Light`, Adobe-GB1) rather than
//! embedding one: every PDF reader carries or substitutes it, and the file stays small.

use std::io::{Cursor, Write};

/// What every document shows.
#[derive(Debug, Clone, Default)]
pub struct Document {
    /// "Minutes — 8001 Weekly sync".
    pub title: String,
    /// When and how long, already written for the reader ("2026-12-03 09:00, 42 min").
    pub when: String,
    /// Who took part, as they are named in the lines.
    pub members: Vec<String>,
    pub lines: Vec<Line>,
    /// The words around the content, in the reader's language.
    pub labels: Labels,
}

/// One statement.
#[derive(Debug, Clone, Default)]
pub struct Line {
    /// From the meeting's start ("00:01:23").
    pub at: String,
    pub speaker: String,
    pub text: String,
    /// Plays this utterance.
    pub link: String,
}

/// Headings, in the reader's language.
#[derive(Debug, Clone)]
pub struct Labels {
    pub when: String,
    pub members: String,
    pub minutes: String,
    pub play: String,
}

impl Default for Labels {
    fn default() -> Self {
        Labels {
            when: "Time".into(),
            members: "Members".into(),
            minutes: "Minutes".into(),
            play: "play".into(),
        }
    }
}

/// The minutes in Markdown.
pub fn markdown(doc: &Document) -> String {
    let mut out = format!("# {}\n\n", md_escape(&doc.title));
    out.push_str(&format!(
        "**{}:** {}\n\n",
        doc.labels.when,
        md_escape(&doc.when)
    ));
    out.push_str(&format!(
        "**{}:** {}\n\n## {}\n\n",
        doc.labels.members,
        md_escape(&doc.members.join(", ")),
        doc.labels.minutes
    ));
    for line in &doc.lines {
        out.push_str(&format!(
            "- [{}]({}) **{}:** {}\n",
            line.at,
            line.link.replace(' ', "%20").replace(')', "%29"),
            md_escape(&line.speaker),
            md_escape(&line.text)
        ));
    }
    out
}

/// Markdown's own characters taken literally.
fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|'
        ) {
            out.push('\\');
        }
        if c == '\n' || c == '\r' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// The minutes as a Word document (.docx).
pub fn docx(doc: &Document) -> std::io::Result<Vec<u8>> {
    let mut body = String::new();
    let para = |style: &str, runs: &str| {
        format!("<w:p><w:pPr><w:pStyle w:val=\"{style}\"/></w:pPr>{runs}</w:p>")
    };
    let run = |text: &str, bold: bool| {
        format!(
            "<w:r>{}<w:t xml:space=\"preserve\">{}</w:t></w:r>",
            if bold { "<w:rPr><w:b/></w:rPr>" } else { "" },
            xml_escape(text)
        )
    };
    body.push_str(&para("Title", &run(&doc.title, false)));
    body.push_str(&para(
        "Normal",
        &(run(&format!("{}: ", doc.labels.when), true) + &run(&doc.when, false)),
    ));
    body.push_str(&para(
        "Normal",
        &(run(&format!("{}: ", doc.labels.members), true) + &run(&doc.members.join(", "), false)),
    ));
    body.push_str(&para("Heading1", &run(&doc.labels.minutes, false)));
    let mut relations = String::new();
    for (i, line) in doc.lines.iter().enumerate() {
        let id = format!("rLine{i}");
        relations.push_str(&format!(
            "<Relationship Id=\"{id}\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink\" Target=\"{}\" TargetMode=\"External\"/>",
            xml_escape(&line.link)
        ));
        let link = format!(
            "<w:hyperlink r:id=\"{id}\"><w:r><w:rPr><w:color w:val=\"1F5FBF\"/><w:u w:val=\"single\"/></w:rPr><w:t xml:space=\"preserve\">{}</w:t></w:r></w:hyperlink>",
            xml_escape(&line.at)
        );
        body.push_str(&para(
            "Normal",
            &(link
                + &run(" ", false)
                + &run(&format!("{}: ", line.speaker), true)
                + &run(&line.text, false)),
        ));
    }
    let document = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
<w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\" \
xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\">\
<w:body>{body}<w:sectPr><w:pgSz w:w=\"11906\" w:h=\"16838\"/>\
<w:pgMar w:top=\"1134\" w:right=\"1134\" w:bottom=\"1134\" w:left=\"1134\" w:header=\"0\" w:footer=\"0\" w:gutter=\"0\"/>\
</w:sectPr></w:body></w:document>"
    );
    let styles = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
<w:styles xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\">\
<w:docDefaults><w:rPrDefault><w:rPr><w:rFonts w:ascii=\"Calibri\" w:hAnsi=\"Calibri\" w:eastAsia=\"SimSun\"/><w:sz w:val=\"21\"/></w:rPr></w:rPrDefault></w:docDefaults>\
<w:style w:type=\"paragraph\" w:default=\"1\" w:styleId=\"Normal\"><w:name w:val=\"Normal\"/><w:pPr><w:spacing w:after=\"80\"/></w:pPr></w:style>\
<w:style w:type=\"paragraph\" w:styleId=\"Title\"><w:name w:val=\"Title\"/><w:basedOn w:val=\"Normal\"/><w:pPr><w:spacing w:after=\"200\"/></w:pPr><w:rPr><w:b/><w:sz w:val=\"36\"/></w:rPr></w:style>\
<w:style w:type=\"paragraph\" w:styleId=\"Heading1\"><w:name w:val=\"heading 1\"/><w:basedOn w:val=\"Normal\"/><w:pPr><w:spacing w:before=\"240\" w:after=\"120\"/><w:outlineLvl w:val=\"0\"/></w:pPr><w:rPr><w:b/><w:sz w:val=\"28\"/></w:rPr></w:style>\
</w:styles>";
    let content_types = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
<Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
<Default Extension=\"xml\" ContentType=\"application/xml\"/>\
<Override PartName=\"/word/document.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml\"/>\
<Override PartName=\"/word/styles.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml\"/>\
</Types>";
    let package_rels = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
<Relationship Id=\"rDoc\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"word/document.xml\"/>\
</Relationships>";
    let document_rels = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
<Relationship Id=\"rStyles\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles\" Target=\"styles.xml\"/>\
{relations}</Relationships>"
    );
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in [
        ("[Content_Types].xml", content_types),
        ("_rels/.rels", package_rels),
        ("word/document.xml", document.as_str()),
        ("word/styles.xml", styles),
        ("word/_rels/document.xml.rels", document_rels.as_str()),
    ] {
        zip.start_file(name, options)
            .map_err(std::io::Error::other)?;
        zip.write_all(content.as_bytes())?;
    }
    Ok(zip.finish().map_err(std::io::Error::other)?.into_inner())
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 allows no other control characters
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 56.0;
const SIZE: f32 = 10.5;
const LEADING: f32 = 15.0;

/// A run of text on a page: where, how big, bold (drawn twice, offset), and a link.
struct Placed {
    x: f32,
    y: f32,
    size: f32,
    text: String,
    link: Option<String>,
}

/// The minutes as a PDF (A4).
pub fn pdf(doc: &Document) -> Vec<u8> {
    let mut pages: Vec<Vec<Placed>> = vec![Vec::new()];
    let mut y = PAGE_H - MARGIN;
    let width = PAGE_W - 2.0 * MARGIN;
    let put = |pages: &mut Vec<Vec<Placed>>,
               y: &mut f32,
               x: f32,
               size: f32,
               leading: f32,
               text: String,
               link: Option<String>| {
        if *y - leading < MARGIN {
            pages.push(Vec::new());
            *y = PAGE_H - MARGIN;
        }
        *y -= leading;
        if let Some(page) = pages.last_mut() {
            page.push(Placed {
                x,
                y: *y,
                size,
                text,
                link,
            });
        }
    };
    for part in wrap(&doc.title, width, 18.0) {
        put(&mut pages, &mut y, MARGIN, 18.0, 24.0, part, None);
    }
    y -= 6.0;
    for part in wrap(&format!("{}: {}", doc.labels.when, doc.when), width, SIZE) {
        put(&mut pages, &mut y, MARGIN, SIZE, LEADING, part, None);
    }
    for part in wrap(
        &format!("{}: {}", doc.labels.members, doc.members.join(", ")),
        width,
        SIZE,
    ) {
        put(&mut pages, &mut y, MARGIN, SIZE, LEADING, part, None);
    }
    y -= 8.0;
    put(
        &mut pages,
        &mut y,
        MARGIN,
        14.0,
        22.0,
        doc.labels.minutes.clone(),
        None,
    );
    let indent = text_width("00:00:00  ", SIZE);
    for line in &doc.lines {
        let body = format!("{}: {}", line.speaker, line.text);
        let parts = wrap(&body, width - indent, SIZE);
        for (i, part) in parts.into_iter().enumerate() {
            if i == 0 {
                put(
                    &mut pages,
                    &mut y,
                    MARGIN,
                    SIZE,
                    LEADING,
                    line.at.clone(),
                    Some(line.link.clone()),
                );
                if let Some(page) = pages.last_mut() {
                    let at_y = page.last().map_or(y, |p| p.y);
                    page.push(Placed {
                        x: MARGIN + indent,
                        y: at_y,
                        size: SIZE,
                        text: part,
                        link: None,
                    });
                }
            } else {
                put(
                    &mut pages,
                    &mut y,
                    MARGIN + indent,
                    SIZE,
                    LEADING,
                    part,
                    None,
                );
            }
        }
        y -= 3.0;
    }
    write_pdf(&pages)
}

/// Width in points: Chinese characters are square, the rest about half as wide.
fn text_width(s: &str, size: f32) -> f32 {
    s.chars()
        .map(|c| if (c as u32) < 0x2E80 { 0.5 } else { 1.0 })
        .sum::<f32>()
        * size
}

/// Breaks text to fit `width`: between words, or anywhere in Chinese.
fn wrap(text: &str, width: f32, size: f32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut word = String::new();
    let flush_word = |current: &mut String, word: &mut String, lines: &mut Vec<String>| {
        if word.is_empty() {
            return;
        }
        if text_width(current, size) + text_width(word, size) > width && !current.trim().is_empty()
        {
            lines.push(current.trim_end().to_owned());
            current.clear();
        }
        // a word longer than the line is cut
        while text_width(word, size) > width {
            let mut cut = String::new();
            for c in word.chars() {
                if text_width(&cut, size) + text_width(&c.to_string(), size) > width {
                    break;
                }
                cut.push(c);
            }
            if cut.is_empty() {
                break;
            }
            lines.push(cut.clone());
            *word = word[cut.len()..].to_owned();
        }
        current.push_str(word);
        word.clear();
    };
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' {
            word.push(' ');
            flush_word(&mut current, &mut word, &mut lines);
        } else if (c as u32) >= 0x2E80 {
            flush_word(&mut current, &mut word, &mut lines);
            word.push(c);
            flush_word(&mut current, &mut word, &mut lines);
        } else {
            word.push(c);
        }
    }
    flush_word(&mut current, &mut word, &mut lines);
    if !current.trim().is_empty() || lines.is_empty() {
        lines.push(current.trim_end().to_owned());
    }
    lines
}

/// Text as the font's codes: UCS-2 big-endian, in hex (outside the BMP: `?`).
fn pdf_hex(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 4);
    for c in s.chars() {
        let code = u16::try_from(c as u32).unwrap_or(u16::from(b'?'));
        out.push_str(&format!("{code:04X}"));
    }
    out
}

fn pdf_string(s: &str) -> String {
    let mut out = String::from("(");
    for c in s.chars() {
        match c {
            '(' | ')' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            _ => out.push_str(&format!("%{:02X}", c as u32 & 0xFF)),
        }
    }
    out.push(')');
    out
}

fn write_pdf(pages: &[Vec<Placed>]) -> Vec<u8> {
    // objects: 1 catalog, 2 pages, 3 font, 4 CID font, 5 descriptor, 6 ToUnicode; then per
    // page its page object and its content stream, then the link annotations
    let mut objects: Vec<Vec<u8>> = Vec::new();
    let first_page = 7;
    let mut annotations: Vec<(usize, String)> = Vec::new();
    let page_ids: Vec<usize> = (0..pages.len()).map(|i| first_page + 2 * i).collect();
    let mut to_unicode = String::from(
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
         /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
         /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
         1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
    );
    for block in (0..256u32).collect::<Vec<_>>().chunks(100) {
        to_unicode.push_str(&format!("{} beginbfrange\n", block.len()));
        for hi in block {
            to_unicode.push_str(&format!("<{hi:02X}00> <{hi:02X}FF> <{hi:02X}00>\n"));
        }
        to_unicode.push_str("endbfrange\n");
    }
    to_unicode.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
    let mut contents = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let mut stream = String::from("BT\n");
        let mut annots = Vec::new();
        for p in page {
            stream.push_str(&format!(
                "/F1 {:.1} Tf 1 0 0 1 {:.1} {:.1} Tm <{}> Tj\n",
                p.size,
                p.x,
                p.y,
                pdf_hex(&p.text)
            ));
            if let Some(link) = &p.link {
                let w = text_width(&p.text, p.size);
                annots.push(format!(
                    "<< /Type /Annot /Subtype /Link /Rect [{:.1} {:.1} {:.1} {:.1}] /Border [0 0 0] /A << /S /URI /URI {} >> >>",
                    p.x,
                    p.y - 2.0,
                    p.x + w,
                    p.y + p.size,
                    pdf_string(link)
                ));
            }
        }
        stream.push_str("ET\n");
        contents.push(stream);
        for a in annots {
            annotations.push((i, a));
        }
    }
    let first_annot = first_page + 2 * pages.len();
    objects.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    objects.push(
        format!(
            "<< /Type /Pages /Count {} /Kids [{}] >>",
            pages.len(),
            page_ids
                .iter()
                .map(|id| format!("{id} 0 R"))
                .collect::<Vec<_>>()
                .join(" ")
        )
        .into_bytes(),
    );
    objects.push(
        b"<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UCS2-H \
          /DescendantFonts [4 0 R] /ToUnicode 6 0 R >>"
            .to_vec(),
    );
    objects.push(
        b"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light \
          /CIDSystemInfo << /Registry (Adobe) /Ordering (GB1) /Supplement 4 >> \
          /FontDescriptor 5 0 R /DW 1000 /W [1 95 500 814 939 500] >>"
            .to_vec(),
    );
    objects.push(
        b"<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 \
          /FontBBox [-25 -254 1000 880] /ItalicAngle 0 /Ascent 880 /Descent -120 \
          /CapHeight 880 /StemV 93 >>"
            .to_vec(),
    );
    objects.push(stream_object(&to_unicode));
    for (i, content) in contents.iter().enumerate() {
        let annots: Vec<String> = annotations
            .iter()
            .enumerate()
            .filter(|(_, (page, _))| *page == i)
            .map(|(n, _)| format!("{} 0 R", first_annot + n))
            .collect();
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] \
                 /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R /Annots [{}] >>",
                page_ids[i] + 1,
                annots.join(" ")
            )
            .into_bytes(),
        );
        objects.push(stream_object(content));
    }
    for (_, a) in &annotations {
        objects.push(a.clone().into_bytes());
    }
    let mut out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn stream_object(content: &str) -> Vec<u8> {
    let mut out = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
    out.extend_from_slice(content.as_bytes());
    out.extend_from_slice(b"\nendstream");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Document {
        Document {
            title: "Minutes — 8001 Weekly *sync*".into(),
            when: "2026-12-03 09:00, 12 min".into(),
            members: vec!["Alice (1001)".into(), "王芳 (1003)".into()],
            lines: vec![
                Line {
                    at: "00:00:04".into(),
                    speaker: "Alice (1001)".into(),
                    text: "The budget <is> approved & signed.".into(),
                    link: "https://conclave.example/#minutes/r1/1/4000".into(),
                },
                Line {
                    at: "00:00:09".into(),
                    speaker: "王芳 (1003)".into(),
                    text: "我们明天下午三点开会。".repeat(12),
                    link: "https://conclave.example/#minutes/r1/2/9000".into(),
                },
            ],
            labels: Labels::default(),
        }
    }

    #[test]
    fn markdown_keeps_each_line_with_its_link_and_escapes_markup() {
        let md = markdown(&sample());
        assert!(
            md.starts_with("# Minutes — 8001 Weekly \\*sync\\*\n"),
            "{md}"
        );
        assert!(md.contains("- [00:00:04](https://conclave.example/#minutes/r1/1/4000) **Alice (1001):** The budget \\<is\\> approved & signed.\n"), "{md}");
        assert!(md.contains("**王芳 (1003):** 我们明天"), "{md}");
    }

    #[test]
    fn docx_is_a_zip_with_escaped_text_and_a_link_per_line() {
        let bytes = docx(&sample()).unwrap();
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut document = String::new();
        std::io::Read::read_to_string(
            &mut zip.by_name("word/document.xml").unwrap(),
            &mut document,
        )
        .unwrap();
        assert!(document.contains("The budget &lt;is&gt; approved &amp; signed."));
        assert!(document.contains("王芳 (1003): "));
        let mut rels = String::new();
        std::io::Read::read_to_string(
            &mut zip.by_name("word/_rels/document.xml.rels").unwrap(),
            &mut rels,
        )
        .unwrap();
        assert!(rels.contains("Target=\"https://conclave.example/#minutes/r1/2/9000\""));
    }

    #[test]
    fn pdf_wraps_long_chinese_lines_and_links_the_times() {
        let bytes = pdf(&sample());
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("%PDF-1.4"));
        assert!(text.contains("/URI (https://conclave.example/#minutes/r1/2/9000)"));
        // 120 Chinese characters at 10.5 pt do not fit one line of 483 pt
        let tj = text.matches(" Tj\n").count();
        assert!(tj >= 9, "{tj} runs");
        assert!(text.ends_with("%%EOF\n"));
    }

    #[test]
    fn wrapping_never_loses_text() {
        for s in [
            "",
            "a",
            "word ".repeat(200).as_str(),
            "长".repeat(300).as_str(),
            "x".repeat(500).as_str(),
        ] {
            let lines = wrap(s, 200.0, 10.0);
            let joined: String = lines
                .concat()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            let orig: String = s.chars().filter(|c| !c.is_whitespace()).collect();
            assert_eq!(joined, orig);
            assert!(lines.iter().all(|l| text_width(l, 10.0) <= 200.0 + 5.0));
        }
    }
}
