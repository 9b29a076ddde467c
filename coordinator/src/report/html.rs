//! One self-contained HTML page: inline CSS and inline SVG charts, nothing loaded
//! from a network (no scripts, no stylesheets or fonts by link, no external images),
//! so the page opens the same from a mail attachment, an archive or an offline
//! machine. Every text given to the builder is HTML-escaped.

use std::fmt::Write as _;

/// The page's style sheet, inline.
const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;\
margin:2rem auto;max-width:1100px;padding:0 1rem;color:#1a1a1a;background:#fff;line-height:1.45}\
h1{font-size:1.7rem;margin-bottom:.3rem}h2{font-size:1.3rem;margin-top:2rem;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem;display:block;overflow-x:auto}\
caption{text-align:left;font-weight:600;padding:.3rem 0}\
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}\
th{background:#eef2f7}tbody tr:nth-child(even){background:#f8f8f8}\
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
figure{margin:1.5rem 0}figure svg{max-width:100%;height:auto;border:1px solid #e5e5e5}\
figcaption{font-size:.9rem;color:#444}\
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5rem .8rem;margin:1rem 0}";

/// One part of the page, in order.
#[derive(Debug, Clone, PartialEq)]
enum Block {
    Heading(String),
    Paragraph(String),
    Table {
        caption: String,
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    Chart {
        caption: String,
        svg: String,
    },
    Note(String),
}

/// A page under construction: a title, then headings, paragraphs, tables, charts and
/// notes in the order added. [`Page::render`] gives the complete document.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    title: String,
    blocks: Vec<Block>,
}

impl Page {
    /// An empty page titled `title` (the `<title>` and the `<h1>`).
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            blocks: Vec::new(),
        }
    }

    /// A section heading (`<h2>`).
    pub fn heading(&mut self, text: impl Into<String>) -> &mut Self {
        self.blocks.push(Block::Heading(text.into()));
        self
    }

    /// A paragraph of plain text.
    pub fn paragraph(&mut self, text: impl Into<String>) -> &mut Self {
        self.blocks.push(Block::Paragraph(text.into()));
        self
    }

    /// A table: a caption (empty for none), the header cells and the rows of cells.
    /// Cells that read as numbers are right-aligned.
    pub fn table(
        &mut self,
        caption: impl Into<String>,
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    ) -> &mut Self {
        self.blocks.push(Block::Table {
            caption: caption.into(),
            header,
            rows,
        });
        self
    }

    /// A chart: an SVG document (as [`super::charts::render_svg`] gives) inlined, and
    /// a caption under it. An XML declaration and the `xmlns` attribute are dropped:
    /// HTML does not need them, and the page references no address.
    pub fn chart(&mut self, caption: impl Into<String>, svg: &str) -> &mut Self {
        self.blocks.push(Block::Chart {
            caption: caption.into(),
            svg: inline_svg(svg),
        });
        self
    }

    /// A highlighted note (a caveat the reader must see).
    pub fn note(&mut self, text: impl Into<String>) -> &mut Self {
        self.blocks.push(Block::Note(text.into()));
        self
    }

    /// The complete HTML document.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let title = escape(&self.title);
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
        );
        for block in &self.blocks {
            match block {
                Block::Heading(text) => {
                    let _ = writeln!(out, "<h2>{}</h2>", escape(text));
                }
                Block::Paragraph(text) => {
                    let _ = writeln!(out, "<p>{}</p>", escape(text));
                }
                Block::Note(text) => {
                    let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(text));
                }
                Block::Table {
                    caption,
                    header,
                    rows,
                } => write_table(&mut out, caption, header, rows),
                Block::Chart { caption, svg } => {
                    let _ = writeln!(
                        out,
                        "<figure>\n{svg}<figcaption>{}</figcaption>\n</figure>",
                        escape(caption)
                    );
                }
            }
        }
        out.push_str("</body>\n</html>\n");
        out
    }
}

fn write_table(out: &mut String, caption: &str, header: &[String], rows: &[Vec<String>]) {
    out.push_str("<table>\n");
    if !caption.is_empty() {
        let _ = writeln!(out, "<caption>{}</caption>", escape(caption));
    }
    if !header.is_empty() {
        out.push_str("<thead><tr>");
        for cell in header {
            let _ = write!(out, "<th scope=\"col\">{}</th>", escape(cell));
        }
        out.push_str("</tr></thead>\n");
    }
    out.push_str("<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            if looks_numeric(cell) {
                let _ = write!(out, "<td class=\"num\">{}</td>", escape(cell));
            } else {
                let _ = write!(out, "<td>{}</td>", escape(cell));
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

/// A cell such as `0.873`, `-12`, `1.2e-6`, `0.91 ± 0.02` or `–` (absent).
fn looks_numeric(cell: &str) -> bool {
    let cell = cell.trim();
    !cell.is_empty()
        && (cell == "–"
            || cell
                .split(['±', ' '])
                .filter(|p| !p.is_empty())
                .all(|p| p.parse::<f64>().is_ok()))
}

/// `text` with `&`, `<`, `>`, `"` and `'` replaced by character references, safe in
/// element content and in quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An SVG document ready to inline: no XML declaration, no doctype, no `xmlns`
/// attributes (the only addresses plotters writes).
fn inline_svg(svg: &str) -> String {
    let mut s = svg.trim();
    if s.starts_with("<?xml") {
        s = s.find("?>").map_or(s, |end| s[end + 2..].trim_start());
    }
    if s.starts_with("<!DOCTYPE") {
        s = s.find('>').map_or(s, |end| s[end + 1..].trim_start());
    }
    // Only the opening tag: a chart's text (escaped by plotters) stays as it is.
    let tag_end = s.find('>').map_or(s.len(), |i| i + 1);
    let (tag, body) = s.split_at(tag_end);
    let mut out = String::with_capacity(s.len());
    let mut rest = tag;
    while let Some(at) = rest.find(" xmlns") {
        out.push_str(&rest[..at]);
        let attr = &rest[at + 1..];
        // Skip `xmlns[:x]="…"` (or single-quoted).
        let end = attr.find('=').and_then(|eq| {
            let quote = attr[eq + 1..].chars().next()?;
            let close = attr[eq + 2..].find(quote)?;
            Some(eq + 2 + close + 1)
        });
        match end {
            Some(end) => rest = &attr[end..],
            None => {
                out.push(' ');
                rest = attr;
            }
        }
    }
    out.push_str(rest);
    out.push_str(body);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_is_escaped() {
        let mut page = Page::new("a <b> & \"c\"");
        page.heading("<h2>")
            .paragraph("x < y && y > z")
            .note("it's <script>alert(1)</script>")
            .table(
                "cap <i>",
                vec!["<th>".into(), "n".into()],
                vec![vec!["<td>&".into(), "3".into()]],
            )
            .chart("fig <1>", "<svg width=\"1\"><text>ok</text></svg>");
        let html = page.render();
        assert!(
            html.contains("<title>a &lt;b&gt; &amp; &quot;c&quot;</title>"),
            "{html}"
        );
        assert!(html.contains("<h2>&lt;h2&gt;</h2>"), "{html}");
        assert!(
            html.contains("<p>x &lt; y &amp;&amp; y &gt; z</p>"),
            "{html}"
        );
        assert!(
            html.contains("it&#39;s &lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("<caption>cap &lt;i&gt;</caption>"), "{html}");
        assert!(html.contains("<th scope=\"col\">&lt;th&gt;</th>"), "{html}");
        assert!(
            html.contains("<td>&lt;td&gt;&amp;</td><td class=\"num\">3</td>"),
            "{html}"
        );
        assert!(
            html.contains("<figcaption>fig &lt;1&gt;</figcaption>"),
            "{html}"
        );
        assert!(!html.contains("<script"), "{html}");
        // The SVG itself is inlined as markup, not escaped.
        assert!(
            html.contains("<svg width=\"1\"><text>ok</text></svg>"),
            "{html}"
        );
    }

    #[test]
    fn a_page_with_a_real_chart_references_nothing_outside_it() {
        use super::super::charts::{Bar, BarChart, Chart, Estimate, render_svg};
        let chart = BarChart::co2(vec![Bar {
            label: "cnn <lr=0.01>".into(),
            value: Some(Estimate::new(2e-4, 1e-4, 3e-4)),
        }]);
        let svg = render_svg(Chart::Bars(&chart), 800, 400).unwrap();
        assert!(
            svg.contains("http://"),
            "plotters writes xmlns: the test must see it removed"
        );
        let mut page = Page::new("report");
        page.chart("emissions", &svg)
            .paragraph("see https://example.org");
        let html = page.render();
        // The only address is the one in the escaped paragraph text, which is not a
        // reference; remove it and nothing may remain.
        let without_text = html.replace("see https://example.org", "");
        for needle in [
            "http://", "https://", "src=", "<link", "<script", "@import", "url(",
        ] {
            assert!(!without_text.contains(needle), "{needle} in {without_text}");
        }
        assert_eq!(html.matches("<svg").count(), 1);
        assert!(html.contains("emissions (kg CO₂e)"));
        assert!(
            html.contains("cnn &lt;lr=0.01&gt;"),
            "the SVG escapes its labels"
        );
    }

    #[test]
    fn svg_preludes_and_namespaces_are_dropped() {
        let svg = "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
                   xmlns:xlink='http://www.w3.org/1999/xlink' width=\"2\"><text>a xmlns=\"b\"</text></svg>";
        assert_eq!(
            inline_svg(svg),
            "<svg width=\"2\"><text>a xmlns=\"b\"</text></svg>\n"
        );
    }

    #[test]
    fn numbers_and_absent_values_are_right_aligned() {
        for cell in ["0.873", "-12", "1.2e-6", "0.91 ± 0.02", "–"] {
            assert!(looks_numeric(cell), "{cell}");
        }
        for cell in ["cnn", "", "lr=0.01", "0.9 s"] {
            assert!(!looks_numeric(cell), "{cell}");
        }
    }
}
