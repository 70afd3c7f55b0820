//! Images in and out of the standard plugins: a [`Raster`] of RGBA pixels,
//! read from and written to `data:` URIs by [`codec`]. Shared by
//! `std-image` (the filters) and `std-ai` (background removal).
//!
//! What it must not know: any task's ports, or what a filter does.
pub mod codec;

/// An image: `width × height` pixels of 4 bytes (R, G, B, A), row by row.
pub struct Raster {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl Raster {
    /// A transparent black image.
    pub fn blank(width: u32, height: u32) -> Raster {
        Raster {
            width,
            height,
            data: vec![0; width as usize * height as usize * 4],
        }
    }

    /// Where pixel (`x`, `y`) starts in `data`.
    pub fn index(&self, x: u32, y: u32) -> usize {
        (y as usize * self.width as usize + x as usize) * 4
    }

    /// Each colour channel through `f`, alpha kept.
    pub fn map_rgb(mut self, f: impl Fn(u8) -> u8) -> Raster {
        for px in self.data.chunks_exact_mut(4) {
            for c in &mut px[..3] {
                *c = f(*c);
            }
        }
        self
    }
}
