//! Standard tasks: image filters, port for port as Workglow's `Image*Task`
//! family (`@workglow/tasks` 0.2.37), whose class names are aliases of
//! these (`ImageBlurTask` is `image.blur`).
//!
//! An image is a `data:` URI (PNG or JPEG; Workglow's raster objects are
//! not taken); every task answers a PNG `data:` URI. The pixels are
//! Workglow's: its CPU algorithms, ported in [`raster`]. Like that CPU path,
//! `image.resize` is nearest-neighbour (`fit` and `kernel` are taken and not
//! used) and `image.rotate` turns by right angles (`background` unused).
//! `image.text` draws with the DejaVu faces it carries ([`text`]).
//! Images of up to 50 megapixels.
mod raster;
mod text;

use pixels::codec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_sdk::{Context, TaskDef, TaskError};

use raster::{Raster, Rgba};

#[derive(Serialize, JsonSchema)]
struct ImageOut {
    /// The result, as a PNG `data:` URI.
    image: String,
}

type Out = Result<ImageOut, TaskError>;

/// Decode `uri`, apply `filter`, encode.
fn apply(uri: &str, filter: impl FnOnce(Raster) -> Result<Raster, TaskError>) -> Out {
    let out = filter(codec::decode(uri)?)?;
    codec::check_size(out.width, out.height)?;
    Ok(ImageOut {
        image: codec::encode(out)?,
    })
}

#[derive(Deserialize, JsonSchema)]
struct Plain {
    /// Source image (`data:image/png;base64,…` or JPEG).
    image: String,
}

fn grayscale(i: Plain, _: &Context) -> Out {
    apply(&i.image, |r| Ok(raster::grayscale(r)))
}

fn invert(i: Plain, _: &Context) -> Out {
    apply(&i.image, |r| Ok(raster::invert(r)))
}

fn sepia(i: Plain, _: &Context) -> Out {
    apply(&i.image, |r| Ok(raster::sepia(r)))
}

#[derive(Deserialize, JsonSchema)]
struct Blur {
    /// Source image.
    image: String,
    /// Blur radius (1-10).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 10))]
    radius: f64,
}

fn one() -> f64 {
    1.0
}

fn blur(i: Blur, _: &Context) -> Out {
    let radius = (i.radius.trunc() as u32).clamp(1, 10);
    apply(&i.image, |r| Ok(raster::blur(r, radius)))
}

#[derive(Deserialize, JsonSchema)]
struct Brightness {
    /// Source image.
    image: String,
    /// Added to each colour channel (-255 to 255).
    #[serde(default)]
    #[schemars(range(min = -255, max = 255))]
    amount: f64,
}

fn brightness(i: Brightness, _: &Context) -> Out {
    apply(&i.image, |r| Ok(raster::brightness(r, i.amount)))
}

#[derive(Deserialize, JsonSchema)]
struct Contrast {
    /// Source image.
    image: String,
    /// Contrast adjustment (-100 to 100).
    #[serde(default)]
    #[schemars(range(min = -100, max = 100))]
    amount: f64,
}

fn contrast(i: Contrast, _: &Context) -> Out {
    apply(&i.image, |r| Ok(raster::contrast(r, i.amount)))
}

#[derive(Deserialize, JsonSchema)]
struct Crop {
    /// Source image.
    image: String,
    /// Left edge, in pixels.
    #[serde(default)]
    left: u32,
    /// Top edge, in pixels.
    #[serde(default)]
    top: u32,
    /// Width, in pixels (less where the image ends).
    #[schemars(range(min = 1))]
    width: u32,
    /// Height, in pixels (less where the image ends).
    #[schemars(range(min = 1))]
    height: u32,
}

fn crop(i: Crop, _: &Context) -> Out {
    apply(&i.image, |r| {
        raster::crop(r, i.left, i.top, i.width.max(1), i.height.max(1))
            .map_err(TaskError::invalid_input)
    })
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
enum Direction {
    /// Left to right.
    #[default]
    Horizontal,
    /// Top to bottom.
    Vertical,
}

#[derive(Deserialize, JsonSchema)]
struct Flip {
    /// Source image.
    image: String,
    /// Which way (default `horizontal`).
    #[serde(default)]
    direction: Direction,
}

fn flip(i: Flip, _: &Context) -> Out {
    let vertical = matches!(i.direction, Direction::Vertical);
    apply(&i.image, |r| Ok(raster::flip(r, vertical)))
}

#[derive(Deserialize, JsonSchema)]
struct Pixelate {
    /// Source image.
    image: String,
    /// Block size in pixels (2-64).
    #[serde(default = "four", rename = "blockSize")]
    #[schemars(range(min = 2, max = 64))]
    block_size: u32,
}

fn four() -> u32 {
    4
}

fn pixelate(i: Pixelate, _: &Context) -> Out {
    let size = i.block_size.clamp(2, 64);
    apply(&i.image, |r| Ok(raster::pixelate(r, size)))
}

#[derive(Deserialize, JsonSchema)]
struct Posterize {
    /// Source image.
    image: String,
    /// Levels per channel (2-16).
    #[serde(default = "four")]
    #[schemars(range(min = 2, max = 16))]
    levels: u32,
}

fn posterize(i: Posterize, _: &Context) -> Out {
    let levels = i.levels.clamp(2, 16);
    apply(&i.image, |r| Ok(raster::posterize(r, levels)))
}

#[derive(Deserialize, JsonSchema)]
struct Resize {
    /// Source image.
    image: String,
    /// Target width in pixels.
    #[schemars(range(min = 1))]
    width: u32,
    /// Target height in pixels.
    #[schemars(range(min = 1))]
    height: u32,
    /// Taken for Workglow's graphs; not used (nearest-neighbour fill).
    #[serde(default)]
    fit: Option<Fit>,
    /// Taken for Workglow's graphs; not used (nearest-neighbour).
    #[serde(default)]
    kernel: Option<Kernel>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Fit {
    Cover,
    Contain,
    Fill,
    Inside,
    Outside,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Kernel {
    Nearest,
    Cubic,
    Mitchell,
    Lanczos2,
    Lanczos3,
}

fn resize(i: Resize, _: &Context) -> Out {
    let (_, _) = (i.fit, i.kernel);
    codec::check_size(i.width.max(1), i.height.max(1))?;
    apply(&i.image, |r| {
        Ok(raster::resize(r, i.width.max(1), i.height.max(1)))
    })
}

#[derive(Deserialize, JsonSchema)]
struct Rotate {
    /// Source image.
    image: String,
    /// Clockwise, in degrees: 90, 180 or 270.
    angle: u32,
    /// Taken for Workglow's graphs; not used (right angles leave no gaps).
    #[serde(default)]
    background: Option<String>,
}

fn rotate(i: Rotate, _: &Context) -> Out {
    if ![90, 180, 270].contains(&i.angle) {
        return Err(TaskError::invalid_input(format!(
            "angle must be 90, 180 or 270, not {}",
            i.angle
        )));
    }
    let _ = i.background;
    apply(&i.image, |r| Ok(raster::rotate(r, i.angle)))
}

#[derive(Deserialize, JsonSchema)]
struct Threshold {
    /// Source image.
    image: String,
    /// Channels at or above it become 255, the others 0 (0-255).
    #[serde(default = "half")]
    #[schemars(range(min = 0, max = 255))]
    value: f64,
}

fn half() -> f64 {
    128.0
}

fn threshold(i: Threshold, _: &Context) -> Out {
    apply(&i.image, |r| Ok(raster::threshold(r, i.value)))
}

#[derive(Deserialize, JsonSchema)]
struct Tint {
    /// Source image.
    image: String,
    /// Tint color: `{r, g, b, a}`, `#RRGGBB[AA]`, `#RGB[A]` or `rgb(…)`/`rgba(…)`.
    color: Value,
    /// How much of the tint (0-1).
    #[serde(default = "point_five")]
    #[schemars(range(min = 0, max = 1))]
    amount: f64,
}

fn point_five() -> f64 {
    0.5
}

fn tint(i: Tint, _: &Context) -> Out {
    let color = color(&i.color)?;
    apply(&i.image, |r| Ok(raster::tint(r, color, i.amount)))
}

#[derive(Deserialize, JsonSchema)]
struct Transparency {
    /// Source image.
    image: String,
    /// Opacity kept (0-1).
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 1))]
    amount: f64,
}

fn transparency(i: Transparency, _: &Context) -> Out {
    apply(&i.image, |r| Ok(raster::transparency(r, i.amount)))
}

#[derive(Deserialize, JsonSchema)]
struct Border {
    /// Source image.
    image: String,
    /// Border width in pixels.
    #[serde(default = "ten", rename = "borderWidth")]
    #[schemars(range(min = 1, max = 10000))]
    border_width: u32,
    /// Border color: `{r, g, b, a}`, `#RRGGBB[AA]`, `#RGB[A]` or `rgb(…)`/`rgba(…)`.
    color: Value,
}

fn ten() -> u32 {
    10
}

fn border(i: Border, _: &Context) -> Out {
    let color = color(&i.color)?;
    let width = i.border_width.max(1);
    apply(&i.image, |r| {
        codec::check_size(r.width + 2 * width, r.height + 2 * width)?;
        Ok(raster::border(r, width, color))
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Text {
    /// Text to render (`\n` breaks lines).
    #[schemars(length(min = 1))]
    text: String,
    /// CSS font family list: serif and monospace names draw DejaVu Serif
    /// and DejaVu Sans Mono, others DejaVu Sans.
    #[serde(default = "sans_serif")]
    font: String,
    /// Font size in pixels.
    #[serde(default = "twenty_four")]
    #[schemars(range(min = 1))]
    font_size: u32,
    #[serde(default)]
    bold: bool,
    #[serde(default)]
    italic: bool,
    /// Text color: `{r, g, b, a}`, `#RRGGBB[AA]`, `#RGB[A]` or `rgb(…)`/`rgba(…)`.
    color: Value,
    /// Anchor of the text block: `top-left` … `bottom-right`.
    #[serde(default = "middle_center")]
    #[schemars(regex(pattern = r"^(top|middle|bottom)-(left|center|right)$"))]
    position: String,
    /// Background image; without one, `width` and `height` size a
    /// transparent one.
    image: Option<String>,
    /// Output width in pixels (without `image`).
    #[schemars(range(min = 1))]
    width: Option<u32>,
    /// Output height in pixels (without `image`).
    #[schemars(range(min = 1))]
    height: Option<u32>,
}

fn sans_serif() -> String {
    "sans-serif".into()
}

fn twenty_four() -> u32 {
    24
}

fn middle_center() -> String {
    "middle-center".into()
}

fn draw_text(i: Text, _: &Context) -> Out {
    let style = text::Style {
        font: &i.font,
        size: i.font_size.max(1) as f32,
        bold: i.bold,
        italic: i.italic,
        color: color(&i.color)?,
        position: &i.position,
    };
    let out = match (&i.image, i.width, i.height) {
        (Some(uri), ..) => {
            let background = codec::decode(uri)?;
            let overlay = text::overlay(background.width, background.height, &i.text, &style)?;
            text::composite(background, &overlay)
        }
        (None, Some(width), Some(height)) => {
            codec::check_size(width, height)?;
            text::overlay(width, height, &i.text, &style)?
        }
        (None, ..) => {
            return Err(TaskError::invalid_input(
                "width and height are required when no background image is given",
            ));
        }
    };
    Ok(ImageOut {
        image: codec::encode(out)?,
    })
}

/// A color as Workglow's `resolveColor` reads it.
fn color(v: &Value) -> Result<Rgba, TaskError> {
    let invalid = || TaskError::invalid_input(format!("invalid color value: {v}"));
    let channel = |v: Option<&Value>| -> Result<u8, TaskError> {
        v.and_then(Value::as_u64)
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(invalid)
    };
    match v {
        Value::Object(m) => Ok(Rgba {
            r: channel(m.get("r"))?,
            g: channel(m.get("g"))?,
            b: channel(m.get("b"))?,
            a: match m.get("a") {
                None => 255,
                a => channel(a)?,
            },
        }),
        Value::String(s) if s.starts_with('#') => hex_color(s).ok_or_else(invalid),
        Value::String(s) => css_color(s).ok_or_else(invalid),
        _ => Err(invalid()),
    }
}

/// `#RGB`, `#RGBA`, `#RRGGBB` or `#RRGGBBAA`.
fn hex_color(s: &str) -> Option<Rgba> {
    let body = s.strip_prefix('#')?;
    if !body.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let digits: Vec<u8> = match body.len() {
        3 | 4 => body
            .chars()
            .map(|c| u8::from_str_radix(&format!("{c}{c}"), 16).ok())
            .collect::<Option<_>>()?,
        6 | 8 => (0..body.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&body[i..i + 2], 16).ok())
            .collect::<Option<_>>()?,
        _ => return None,
    };
    Some(Rgba {
        r: digits[0],
        g: digits[1],
        b: digits[2],
        a: digits.get(3).copied().unwrap_or(255),
    })
}

/// `rgb(r, g, b)` or `rgba(r, g, b, a)` with `a` in 0-1.
fn css_color(s: &str) -> Option<Rgba> {
    let s = s.trim();
    let inner = s
        .strip_prefix("rgba(")
        .or_else(|| s.strip_prefix("rgb("))?
        .strip_suffix(')')?;
    let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
    let channel = |p: &str| p.parse::<u8>().ok();
    let alpha = match parts.get(3) {
        None => 255,
        Some(a) => {
            let a: f64 = a.parse().ok().filter(|a| (0.0..=1.0).contains(a))?;
            (a * 255.0 + 0.5).floor() as u8
        }
    };
    if !(3..=4).contains(&parts.len()) {
        return None;
    }
    Some(Rgba {
        r: channel(parts[0])?,
        g: channel(parts[1])?,
        b: channel(parts[2])?,
        a: alpha,
    })
}

fn tasks() -> Vec<TaskDef> {
    vec![
        TaskDef::new("image.blur", blur)
            .title("Blur")
            .description("Box blur of `radius` → image."),
        TaskDef::new("image.border", border)
            .title("Add border")
            .description("A `borderWidth` border of `color` around the image → image."),
        TaskDef::new("image.brightness", brightness)
            .title("Brightness")
            .description("Adds `amount` to each colour channel → image."),
        TaskDef::new("image.contrast", contrast)
            .title("Contrast")
            .description("Adjusts contrast by `amount` (-100 to 100) → image."),
        TaskDef::new("image.crop", crop)
            .title("Crop")
            .description("The `width × height` part from (`left`, `top`) → image."),
        TaskDef::new("image.flip", flip)
            .title("Flip")
            .description("Mirrors the image `horizontal`ly or `vertical`ly → image."),
        TaskDef::new("image.grayscale", grayscale)
            .title("Grayscale")
            .description("The image in shades of grey → image."),
        TaskDef::new("image.invert", invert)
            .title("Invert")
            .description("Inverts each colour channel → image."),
        TaskDef::new("image.pixelate", pixelate)
            .title("Pixelate")
            .description("Averages blocks of `blockSize` pixels → image."),
        TaskDef::new("image.posterize", posterize)
            .title("Posterize")
            .description("Reduces each channel to `levels` values → image."),
        TaskDef::new("image.resize", resize)
            .title("Resize")
            .description("Resizes to `width × height`, nearest-neighbour → image."),
        TaskDef::new("image.rotate", rotate)
            .title("Rotate")
            .description("Rotates clockwise by `angle` (90, 180, 270) → image."),
        TaskDef::new("image.sepia", sepia)
            .title("Sepia")
            .description("A sepia tone → image."),
        TaskDef::new("image.text", draw_text)
            .title("Render text to image")
            .description(
                "Draws `text` at `position` on `image`, or on a transparent `width × height` \
                 image → image.",
            ),
        TaskDef::new("image.threshold", threshold)
            .title("Threshold")
            .description("Each channel 255 at or above `value`, else 0 → image."),
        TaskDef::new("image.tint", tint)
            .title("Tint")
            .description("Blends `amount` of `color` into each pixel → image."),
        TaskDef::new("image.transparency", transparency)
            .title("Transparency")
            .description("Scales the alpha channel by `amount` → image."),
    ]
    .into_iter()
    .map(|t| t.category("Image"))
    .collect()
}

weft_sdk::export_plugin!(tasks);
