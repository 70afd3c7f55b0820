//! Images in and out of the tasks: `data:` URIs (PNG or JPEG in, PNG out)
//! to and from RGBA rasters, within a pixel limit.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use weft_sdk::TaskError;

use crate::Raster;

/// The most pixels an image may have (in or out): 50 megapixels, 200 MB
/// as RGBA.
pub const MAX_PIXELS: u64 = 50_000_000;

/// The file in a `data:image/png;base64,…` or `data:image/jpeg;…` URI,
/// with its media type (`image/png` or `image/jpeg`, by its bytes, not
/// the URI's header), not decoded.
pub fn file(uri: &str) -> Result<(&'static str, Vec<u8>), TaskError> {
    let bytes = bytes(uri)?;
    let media_type = match image::guess_format(&bytes) {
        Ok(image::ImageFormat::Png) => "image/png",
        Ok(image::ImageFormat::Jpeg) => "image/jpeg",
        _ => {
            return Err(TaskError::invalid_input(
                "image: not a PNG or JPEG file".to_string(),
            ));
        }
    };
    Ok((media_type, bytes))
}

/// A file as a `data:` URI of `media_type`.
pub fn data_uri(media_type: &str, bytes: &[u8]) -> String {
    format!("data:{media_type};base64,{}", STANDARD.encode(bytes))
}

/// The bytes of a base64 `data:` URI.
fn bytes(uri: &str) -> Result<Vec<u8>, TaskError> {
    let invalid = |why: String| TaskError::invalid_input(format!("image: {why}"));
    let rest = uri
        .strip_prefix("data:")
        .ok_or_else(|| invalid("give the image as a `data:image/png;base64,…` URI".into()))?;
    let (header, payload) = rest
        .split_once(',')
        .ok_or_else(|| invalid("a data URI needs a `,` before its data".into()))?;
    if !header.ends_with(";base64") {
        return Err(invalid("only base64 data URIs are read".into()));
    }
    STANDARD
        .decode(payload.trim())
        .map_err(|e| invalid(format!("not base64: {e}")))
}

/// The raster of a `data:image/png;base64,…` or `data:image/jpeg;…` URI.
pub fn decode(uri: &str) -> Result<Raster, TaskError> {
    let invalid = |why: String| TaskError::invalid_input(format!("image: {why}"));
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes(uri)?))
        .with_guessed_format()
        .map_err(|e| invalid(e.to_string()))?;
    // Refused before anything is allocated for the pixels: a small file
    // can claim a huge image.
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 4 + (16 << 20));
    reader.limits(limits);
    let decoded = reader
        .decode()
        .map_err(|e| invalid(format!("cannot decode it ({e}); PNG and JPEG are read")))?
        .into_rgba8();
    let (width, height) = decoded.dimensions();
    check_size(width, height)?;
    Ok(Raster {
        width,
        height,
        data: decoded.into_raw(),
    })
}

/// `raster` as a `data:image/png;base64,…` URI.
pub fn encode(raster: Raster) -> Result<String, TaskError> {
    let Raster {
        width,
        height,
        data,
    } = raster;
    let buffer = image::RgbaImage::from_raw(width, height, data)
        .ok_or_else(|| TaskError::failed("internal: raster size does not match its data"))?;
    let mut png = Vec::new();
    buffer
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| TaskError::failed(format!("cannot encode PNG: {e}")))?;
    Ok(format!("data:image/png;base64,{}", STANDARD.encode(png)))
}

/// Refuse images over [`MAX_PIXELS`] (or with a zero side).
pub fn check_size(width: u32, height: u32) -> Result<(), TaskError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels == 0 || pixels > MAX_PIXELS {
        return Err(TaskError::invalid_input(format!(
            "image: {width}×{height} is {pixels} pixels; images of 1 to {MAX_PIXELS} pixels are taken"
        )));
    }
    Ok(())
}
