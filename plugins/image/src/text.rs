//! Text drawn on an image, as Workglow's `ImageTextTask` draws it.
//!
//! Workglow's Node renderer writes an SVG `<text>` (anchored, `hanging`
//! baseline, lines 1.25 em apart, 2 px from the edges) and has sharp
//! (librsvg, the system's fonts) rasterise it, then lays the result over
//! the background. Here the same layout is drawn with `ab_glyph` from the
//! DejaVu faces this plugin carries, so a graph draws the same pixels on
//! every machine. A CSS family list picks a face: serif names DejaVu Serif,
//! monospace names DejaVu Sans Mono, anything else DejaVu Sans (which is
//! what fontconfig gives librsvg on a machine with only DejaVu installed).
//!
//! Drawing costs the area of each glyph's box, so the boxes drawn may add
//! up to [`INK_BUDGET`] image areas: a million zero-width accents stacked
//! on one spot are refused, not drawn. Glyphs off the image are laid out
//! but not outlined.

use ab_glyph::{Font, FontRef, Glyph, PxScale, ScaleFont, point};
use weft_sdk::TaskError;

use crate::raster::{Raster, Rgba};

/// Space kept between the text and the image's edges (Workglow's).
const PADDING: f32 = 2.0;
/// Line spacing in ems (Workglow's).
const LINE_HEIGHT: f32 = 1.25;
/// Where librsvg puts the `hanging` baseline: this far above the
/// alphabetic one, in ems (measured on DejaVu's three families at 24, 100
/// and 200 px).
const HANGING: f32 = 0.69;
/// The glyph boxes drawn may cover this many times the image's area (at
/// least a megapixel's worth).
const INK_BUDGET: u64 = 8;

/// How to draw the text.
pub struct Style<'a> {
    /// A CSS `font-family` list.
    pub font: &'a str,
    /// The em size in pixels.
    pub size: f32,
    pub bold: bool,
    pub italic: bool,
    pub color: Rgba,
    /// `top-left` … `bottom-right`.
    pub position: &'a str,
}

/// The text alone on a transparent `width × height` image.
pub fn overlay(width: u32, height: u32, text: &str, style: &Style) -> Result<Raster, TaskError> {
    let (row, col) = anchor(style.position)?;
    let font = face(style.font, style.bold, style.italic)?;
    // ab_glyph scales by ascent - descent; the CSS size is the em.
    let units = font.height_unscaled() / font.units_per_em().unwrap_or(2048.0);
    let scaled = font.as_scaled(PxScale::from(style.size * units));
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.split('\n').collect();
    let line_height = style.size * LINE_HEIGHT;
    let block = lines.len() as f32 * line_height;
    let (w, h) = (width as f32, height as f32);
    let top = match row {
        Row::Top => PADDING,
        Row::Middle => (h - block) / 2.0,
        Row::Bottom => h - PADDING - block,
    };
    let mut canvas = Canvas::new(width, height, style.color);
    // A glyph reaches less than 2 em from its origin: those further off
    // the image are not outlined at all (a long text costs its layout).
    let reach = 2.0 * style.size;
    for (i, line) in lines.iter().enumerate() {
        let baseline = top + i as f32 * line_height + HANGING * style.size;
        if baseline < -reach || baseline > h + reach {
            continue;
        }
        let glyphs = layout(&scaled, line);
        let advance = glyphs.last().map_or(0.0, |(g, a)| g.position.x + a);
        let start = match col {
            Col::Left => PADDING,
            Col::Center => w / 2.0 - advance / 2.0,
            Col::Right => w - PADDING - advance,
        };
        for (mut glyph, _) in glyphs {
            let x = start + glyph.position.x;
            if x < -reach || x > w + reach {
                continue;
            }
            glyph.position = point(x, baseline);
            canvas.draw(&scaled, glyph)?;
        }
    }
    Ok(canvas.raster)
}

/// Each glyph of `line` placed from x = 0, with its advance.
fn layout<F: Font>(font: &ab_glyph::PxScaleFont<F>, line: &str) -> Vec<(Glyph, f32)> {
    let mut x = 0.0;
    let mut previous = None;
    let mut glyphs = Vec::with_capacity(line.len());
    for c in line.chars() {
        let id = font.glyph_id(c);
        if let Some(previous) = previous {
            x += font.kern(previous, id);
        }
        let advance = font.h_advance(id);
        glyphs.push((
            id.with_scale_and_position(font.scale(), point(x, 0.0)),
            advance,
        ));
        x += advance;
        previous = Some(id);
    }
    glyphs
}

/// A transparent raster being drawn on in one color.
struct Canvas {
    raster: Raster,
    color: Rgba,
    /// Glyph-box pixels still allowed.
    budget: u64,
}

impl Canvas {
    fn new(width: u32, height: u32, color: Rgba) -> Canvas {
        let area = u64::from(width) * u64::from(height);
        Canvas {
            raster: Raster::blank(width, height),
            color,
            budget: (area * INK_BUDGET).max(1 << 20),
        }
    }

    /// Draw `glyph` if it shows, source-over the ink already there.
    fn draw<F: Font>(
        &mut self,
        font: &ab_glyph::PxScaleFont<F>,
        glyph: Glyph,
    ) -> Result<(), TaskError> {
        let Some(outline) = font.outline_glyph(glyph) else {
            return Ok(()); // a space
        };
        let bounds = outline.px_bounds();
        let (width, height) = (self.raster.width as f32, self.raster.height as f32);
        if bounds.max.x <= 0.0
            || bounds.max.y <= 0.0
            || bounds.min.x >= width
            || bounds.min.y >= height
        {
            return Ok(());
        }
        let area = (bounds.width() as u64).saturating_mul(bounds.height() as u64);
        self.budget = self.budget.checked_sub(area).ok_or_else(|| {
            TaskError::invalid_input(format!(
                "text: too much to draw on a {}×{} image (glyphs may cover {INK_BUDGET} times its area)",
                self.raster.width, self.raster.height
            ))
        })?;
        let (x0, y0) = (bounds.min.x as i64, bounds.min.y as i64);
        let Rgba { r, g, b, a } = self.color;
        let raster = &mut self.raster;
        outline.draw(|dx, dy, coverage| {
            let (x, y) = (x0 + i64::from(dx), y0 + i64::from(dy));
            if x < 0 || y < 0 || x >= i64::from(raster.width) || y >= i64::from(raster.height) {
                return;
            }
            let i = raster.index(x as u32, y as u32);
            let ink = coverage.clamp(0.0, 1.0) * f32::from(a) / 255.0;
            let had = f32::from(raster.data[i + 3]) / 255.0;
            let alpha = ink + had * (1.0 - ink);
            raster.data[i..i + 4].copy_from_slice(&[r, g, b, (alpha * 255.0).round() as u8]);
        });
        Ok(())
    }
}

/// `overlay` laid over `background` (same size): Workglow's
/// `compositeTextOverBackground`, source-over on straight alpha.
pub fn composite(mut background: Raster, overlay: &Raster) -> Raster {
    let round = |v: f64| (v * 255.0).round().clamp(0.0, 255.0) as u8;
    for (out, src) in background
        .data
        .chunks_exact_mut(4)
        .zip(overlay.data.chunks_exact(4))
    {
        let src_a = f64::from(src[3]) / 255.0;
        if src_a <= 0.0 {
            continue;
        }
        let dst_a = f64::from(out[3]) / 255.0;
        let out_a = src_a + dst_a * (1.0 - src_a);
        for c in 0..3 {
            let (s, d) = (f64::from(src[c]) / 255.0, f64::from(out[c]) / 255.0);
            out[c] = round((s * src_a + d * dst_a * (1.0 - src_a)) / out_a);
        }
        out[3] = round(out_a);
    }
    background
}

enum Row {
    Top,
    Middle,
    Bottom,
}

enum Col {
    Left,
    Center,
    Right,
}

/// `top-left` … `bottom-right`.
fn anchor(position: &str) -> Result<(Row, Col), TaskError> {
    let invalid = || {
        TaskError::invalid_input(format!(
            "position: `{position}` is not one of top|middle|bottom-left|center|right"
        ))
    };
    let (row, col) = position.split_once('-').ok_or_else(invalid)?;
    let row = match row {
        "top" => Row::Top,
        "middle" => Row::Middle,
        "bottom" => Row::Bottom,
        _ => return Err(invalid()),
    };
    let col = match col {
        "left" => Col::Left,
        "center" => Col::Center,
        "right" => Col::Right,
        _ => return Err(invalid()),
    };
    Ok((row, col))
}

#[derive(Clone, Copy)]
enum Family {
    Sans,
    Serif,
    Mono,
}

/// The face for a CSS family list: the first family known here decides
/// (as a browser takes the first it has), else sans-serif.
fn face(families: &str, bold: bool, italic: bool) -> Result<FontRef<'static>, TaskError> {
    let family = families
        .split(',')
        .map(|f| f.trim().trim_matches(['"', '\'']).to_ascii_lowercase())
        .find_map(|f| family_of(&f))
        .unwrap_or(Family::Sans);
    let bytes = match (family, bold, italic) {
        (Family::Sans, false, false) => dejavu::sans::regular(),
        (Family::Sans, true, false) => dejavu::sans::bold(),
        (Family::Sans, false, true) => dejavu::sans::oblique(),
        (Family::Sans, true, true) => dejavu::sans::bold_oblique(),
        (Family::Serif, false, false) => dejavu::serif::regular(),
        (Family::Serif, true, false) => dejavu::serif::bold(),
        (Family::Serif, false, true) => dejavu::serif::italic(),
        (Family::Serif, true, true) => dejavu::serif::bold_italic(),
        (Family::Mono, false, false) => dejavu::sans_mono::regular(),
        (Family::Mono, true, false) => dejavu::sans_mono::bold(),
        (Family::Mono, false, true) => dejavu::sans_mono::oblique(),
        (Family::Mono, true, true) => dejavu::sans_mono::bold_oblique(),
    };
    FontRef::try_from_slice(bytes)
        .map_err(|e| TaskError::failed(format!("internal: a carried font does not load: {e}")))
}

/// What a family name stands for, if it is known here.
fn family_of(name: &str) -> Option<Family> {
    const SANS: &[&str] = &[
        "sans-serif",
        "dejavu sans",
        "arial",
        "helvetica",
        "verdana",
        "system-ui",
        "ui-sans-serif",
    ];
    const SERIF: &[&str] = &[
        "serif",
        "dejavu serif",
        "times",
        "times new roman",
        "georgia",
        "garamond",
        "palatino",
        "cambria",
        "ui-serif",
    ];
    const MONO: &[&str] = &[
        "monospace",
        "dejavu sans mono",
        "courier",
        "courier new",
        "consolas",
        "menlo",
        "monaco",
        "lucida console",
        "ui-monospace",
    ];
    if SANS.contains(&name) {
        Some(Family::Sans)
    } else if SERIF.contains(&name) {
        Some(Family::Serif)
    } else if MONO.contains(&name) {
        Some(Family::Mono)
    } else {
        None
    }
}
