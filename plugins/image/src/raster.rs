//! The filters: Workglow's CPU implementations (`@workglow/tasks` 0.2.37,
//! `src/task/image/*/*.cpu.ts`), ported operation for operation on RGBA
//! rasters, with JavaScript's `Uint8ClampedArray` rounding where it stores
//! a computed value. Each is a pure function from raster to raster.

pub use pixels::Raster;

/// A color with alpha.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rgba {
    pub r: u8,
    pub g: u8,
    pub b: u8,
    pub a: u8,
}

/// What storing `v` in a `Uint8ClampedArray` stores: clamped to 0..=255,
/// rounded half to even, NaN as 0.
pub fn clamp(v: f64) -> u8 {
    if v.is_nan() || v <= 0.0 {
        0
    } else if v >= 255.0 {
        255
    } else {
        v.round_ties_even() as u8
    }
}

/// A 256-entry table of `f(i)` stored as a `Uint8ClampedArray` stores it.
fn table(f: impl Fn(f64) -> f64) -> [u8; 256] {
    std::array::from_fn(|i| clamp(f(i as f64)))
}

pub fn invert(r: Raster) -> Raster {
    r.map_rgb(|c| 255 - c)
}

pub fn brightness(r: Raster, amount: f64) -> Raster {
    r.map_rgb(|c| clamp(f64::from(c) + amount))
}

pub fn contrast(r: Raster, amount: f64) -> Raster {
    let factor = 259.0 * (amount + 255.0) / (255.0 * (259.0 - amount));
    let lut = table(|i| factor * (i - 128.0) + 128.0);
    r.map_rgb(|c| lut[c as usize])
}

pub fn posterize(r: Raster, levels: u32) -> Raster {
    let step = 255.0 / f64::from(levels - 1);
    // JavaScript's Math.round: halves up.
    let js_round = |v: f64| (v + 0.5).floor();
    let lut = table(|i| js_round(js_round(i / step) * step));
    r.map_rgb(|c| lut[c as usize])
}

pub fn threshold(r: Raster, value: f64) -> Raster {
    r.map_rgb(|c| if f64::from(c) >= value { 255 } else { 0 })
}

pub fn grayscale(mut r: Raster) -> Raster {
    for px in r.data.chunks_exact_mut(4) {
        let (red, green, blue) = (u32::from(px[0]), u32::from(px[1]), u32::from(px[2]));
        let g = ((red * 77 + green * 150 + blue * 29) >> 8) as u8;
        px[..3].fill(g);
    }
    r
}

pub fn sepia(mut r: Raster) -> Raster {
    for px in r.data.chunks_exact_mut(4) {
        let (red, green, blue) = (u32::from(px[0]), u32::from(px[1]), u32::from(px[2]));
        let channel =
            |a: u32, b: u32, c: u32| ((red * a + green * b + blue * c) >> 10).min(255) as u8;
        px[0] = channel(402, 787, 194);
        px[1] = channel(357, 702, 172);
        px[2] = channel(279, 547, 134);
    }
    r
}

pub fn tint(r: Raster, color: Rgba, amount: f64) -> Raster {
    let keep = 1.0 - amount;
    let add = [color.r, color.g, color.b].map(|c| f64::from(c) * amount);
    let mut r = r;
    for px in r.data.chunks_exact_mut(4) {
        for (c, add) in px[..3].iter_mut().zip(add) {
            *c = clamp(f64::from(*c) * keep + add);
        }
    }
    r
}

pub fn transparency(mut r: Raster, amount: f64) -> Raster {
    let scale = (amount * 255.0 + 0.5).floor();
    for px in r.data.chunks_exact_mut(4) {
        px[3] = clamp((f64::from(px[3]) * scale + 127.0) / 255.0);
    }
    r
}

pub fn flip(r: Raster, vertical: bool) -> Raster {
    let mut out = Raster::blank(r.width, r.height);
    for y in 0..r.height {
        for x in 0..r.width {
            let (tx, ty) = match vertical {
                true => (x, r.height - 1 - y),
                false => (r.width - 1 - x, y),
            };
            let (s, d) = (r.index(x, y), out.index(tx, ty));
            out.data[d..d + 4].copy_from_slice(&r.data[s..s + 4]);
        }
    }
    out
}

/// Clockwise by 90, 180 or 270 degrees.
pub fn rotate(r: Raster, angle: u32) -> Raster {
    let swap = angle != 180;
    let (w, h) = if swap {
        (r.height, r.width)
    } else {
        (r.width, r.height)
    };
    let mut out = Raster::blank(w, h);
    for sy in 0..r.height {
        for sx in 0..r.width {
            let (dx, dy) = match angle {
                90 => (r.height - 1 - sy, sx),
                180 => (r.width - 1 - sx, r.height - 1 - sy),
                _ => (sy, r.width - 1 - sx),
            };
            let (s, d) = (r.index(sx, sy), out.index(dx, dy));
            out.data[d..d + 4].copy_from_slice(&r.data[s..s + 4]);
        }
    }
    out
}

/// The part from (`left`, `top`), at most `width × height`; the origin
/// must be inside the image.
pub fn crop(r: Raster, left: u32, top: u32, width: u32, height: u32) -> Result<Raster, String> {
    if left >= r.width || top >= r.height {
        return Err(format!(
            "the crop origin ({left}, {top}) is outside the {}×{} image",
            r.width, r.height
        ));
    }
    let (w, h) = (width.min(r.width - left), height.min(r.height - top));
    let mut out = Raster::blank(w, h);
    for row in 0..h {
        let s = r.index(left, top + row);
        let d = out.index(0, row);
        out.data[d..d + w as usize * 4].copy_from_slice(&r.data[s..s + w as usize * 4]);
    }
    Ok(out)
}

/// Nearest-neighbour resize to `width × height`.
pub fn resize(r: Raster, width: u32, height: u32) -> Raster {
    let mut out = Raster::blank(width, height);
    for dy in 0..height {
        let sy =
            ((u64::from(dy) * u64::from(r.height) / u64::from(height)) as u32).min(r.height - 1);
        for dx in 0..width {
            let sx =
                ((u64::from(dx) * u64::from(r.width) / u64::from(width)) as u32).min(r.width - 1);
            let (s, d) = (r.index(sx, sy), out.index(dx, dy));
            out.data[d..d + 4].copy_from_slice(&r.data[s..s + 4]);
        }
    }
    out
}

pub fn border(r: Raster, width: u32, color: Rgba) -> Raster {
    let mut out = Raster::blank(r.width + 2 * width, r.height + 2 * width);
    for px in out.data.chunks_exact_mut(4) {
        px.copy_from_slice(&[color.r, color.g, color.b, color.a]);
    }
    for y in 0..r.height {
        let s = r.index(0, y);
        let d = out.index(width, y + width);
        let row = r.width as usize * 4;
        out.data[d..d + row].copy_from_slice(&r.data[s..s + row]);
    }
    out
}

/// Each block of `size × size` pixels (smaller at the right and bottom
/// edges) filled with its average, rounded half up.
pub fn pixelate(mut r: Raster, size: u32) -> Raster {
    for by in (0..r.height).step_by(size as usize) {
        let bh = size.min(r.height - by);
        for bx in (0..r.width).step_by(size as usize) {
            let bw = size.min(r.width - bx);
            let mut sums = [0u64; 4];
            for y in by..by + bh {
                for x in bx..bx + bw {
                    let i = r.index(x, y);
                    for (c, sum) in sums.iter_mut().enumerate() {
                        *sum += u64::from(r.data[i + c]);
                    }
                }
            }
            let area = f64::from(bw * bh);
            let avg = sums.map(|s| (s as f64 / area + 0.5) as u8);
            for y in by..by + bh {
                for x in bx..bx + bw {
                    let i = r.index(x, y);
                    r.data[i..i + 4].copy_from_slice(&avg);
                }
            }
        }
    }
    r
}

/// Box blur of `radius`, horizontal then vertical, edges clamped, each
/// pass rounded half up (Workglow's running-sum version, including where
/// it starts each row's window).
pub fn blur(r: Raster, radius: u32) -> Raster {
    let tmp = blur_pass(&r, radius, true);
    blur_pass(&tmp, radius, false)
}

fn blur_pass(r: &Raster, radius: u32, horizontal: bool) -> Raster {
    let (len, lines) = match horizontal {
        true => (r.width, r.height),
        false => (r.height, r.width),
    };
    let at = |line: u32, pos: u32| match horizontal {
        true => r.index(pos, line),
        false => r.index(line, pos),
    };
    let kernel = f64::from(2 * radius + 1);
    let rad = i64::from(radius);
    let last = i64::from(len) - 1;
    let mut out = Raster::blank(r.width, r.height);
    for line in 0..lines {
        for c in 0..4 {
            let mut sum: i64 = (-rad..=rad)
                .map(|k| i64::from(r.data[at(line, k.min(last).max(0) as u32) + c]))
                .sum();
            out.data[at(line, 0) + c] = (sum as f64 / kernel + 0.5) as u8;
            for pos in 1..len {
                let add = (i64::from(pos) + rad).min(last) as u32;
                let remove = (i64::from(pos) - rad - 1).max(0) as u32;
                sum +=
                    i64::from(r.data[at(line, add) + c]) - i64::from(r.data[at(line, remove) + c]);
                out.data[at(line, pos) + c] = (sum as f64 / kernel + 0.5) as u8;
            }
        }
    }
    out
}
