//! What a SQLite connection of the SQL tasks may do, enforced by SQLite
//! itself: an authorizer (checked as each statement is prepared), a limit of
//! no attached databases, defensive mode, and a one-statement check.
//!
//! Refused on every connection: `ATTACH` and `DETACH` (they open any file the
//! host can reach), `VACUUM INTO` (it writes a new database file anywhere;
//! it attaches one internally, which the attach limit refuses),
//! `load_extension` (native code), and every PRAGMA but a few that only
//! describe the schema (others change files, journals or safety settings).
//! On a read-only connection (`data.sql-query`) also every statement that
//! writes. This module holds the only `unsafe` code of the data tasks: the
//! calls into SQLite's C API that sqlx does not wrap.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr::NonNull;

use libsqlite3_sys as ffi;

/// PRAGMAs that only describe the database (and take a table or index name).
const SAFE_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "collation_list",
];

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// `data.sql-query`: reading only.
    Read,
    /// `data.sql-execute`: reading and changing data in the granted file.
    Write,
}

/// Install the guard on a new connection.
///
/// # Safety
/// `db` must be a live connection handle, used by no other thread during
/// the call (sqlx's locked handle guarantees both).
pub(super) unsafe fn install(db: NonNull<ffi::sqlite3>, access: Access) -> Result<(), String> {
    let db = db.as_ptr();
    let callback: AuthCallback = match access {
        Access::Read => authorize::<true>,
        Access::Write => authorize::<false>,
    };
    // SAFETY: `db` is live and exclusively ours (the caller's contract); the
    // callbacks are plain functions with no user data.
    unsafe {
        ffi::sqlite3_limit(db, ffi::SQLITE_LIMIT_ATTACHED, 0);
        let mut on: c_int = 0;
        let rc = ffi::sqlite3_db_config(db, ffi::SQLITE_DBCONFIG_DEFENSIVE, 1 as c_int, &mut on);
        if rc != ffi::SQLITE_OK {
            return Err(format!("cannot enable SQLite's defensive mode (code {rc})"));
        }
        let rc = ffi::sqlite3_db_config(
            db,
            ffi::SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION,
            0 as c_int,
            &mut on,
        );
        if rc != ffi::SQLITE_OK {
            return Err(format!("cannot disable SQLite extensions (code {rc})"));
        }
        let rc = ffi::sqlite3_set_authorizer(db, Some(callback), std::ptr::null_mut());
        if rc != ffi::SQLITE_OK {
            return Err(format!("cannot install the SQLite authorizer (code {rc})"));
        }
    }
    Ok(())
}

/// Prepare `sql` without running it (the authorizer runs now): refuse a
/// second statement after the first, and on a read-only connection a
/// statement that writes (`VACUUM`, which the authorizer does not see).
///
/// # Safety
/// As for [`install`].
pub(super) unsafe fn check(
    db: NonNull<ffi::sqlite3>,
    sql: &str,
    access: Access,
) -> Result<(), String> {
    let db = db.as_ptr();
    let len = c_int::try_from(sql.len()).map_err(|_| "the statement is too long".to_string())?;
    let mut stmt: *mut ffi::sqlite3_stmt = std::ptr::null_mut();
    let mut tail: *const c_char = std::ptr::null();
    // SAFETY: `sql` outlives the call, `len` is its length in bytes, and
    // `stmt` is finalized below on every path.
    let (rc, rest, read_only) = unsafe {
        let rc = ffi::sqlite3_prepare_v2(db, sql.as_ptr().cast(), len, &mut stmt, &mut tail);
        let rest = if tail.is_null() {
            ""
        } else {
            let used = tail.offset_from(sql.as_ptr().cast()) as usize;
            sql.get(used..).unwrap_or("")
        };
        let read_only = !stmt.is_null() && ffi::sqlite3_stmt_readonly(stmt) != 0;
        let message = match rc {
            ffi::SQLITE_OK => None,
            ffi::SQLITE_AUTH => Some(not_authorized(access)),
            _ => Some(last_error(db)),
        };
        ffi::sqlite3_finalize(stmt);
        if let Some(message) = message {
            return Err(message);
        }
        (rc, rest, read_only)
    };
    debug_assert_eq!(rc, ffi::SQLITE_OK);
    if !only_comments(rest) {
        return Err("one statement per call: remove what follows the first `;`".into());
    }
    if stmt.is_null() {
        return Err("no statement".into());
    }
    if access == Access::Read && !read_only {
        return Err("data.sql-query runs statements that only read; use data.sql-execute".into());
    }
    Ok(())
}

/// Why the authorizer refused a statement.
fn not_authorized(access: Access) -> String {
    let always = "ATTACH, DETACH, VACUUM INTO, load_extension and PRAGMAs other than \
                  schema listings are refused";
    match access {
        Access::Read => format!(
            "data.sql-query runs statements that only read (use data.sql-execute); {always}"
        ),
        Access::Write => format!("{always} (not authorized)"),
    }
}

/// The connection's last error message.
///
/// # Safety
/// `db` must be a live connection handle.
unsafe fn last_error(db: *mut ffi::sqlite3) -> String {
    // SAFETY: sqlite3_errmsg returns a NUL-terminated string owned by `db`,
    // copied here before any other call on it.
    unsafe {
        CStr::from_ptr(ffi::sqlite3_errmsg(db))
            .to_string_lossy()
            .into_owned()
    }
}

/// Whether `sql` holds nothing but whitespace, `;` and comments.
fn only_comments(mut sql: &str) -> bool {
    loop {
        sql = sql.trim_start_matches(|c: char| c.is_whitespace() || c == ';');
        if let Some(rest) = sql.strip_prefix("--") {
            sql = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(rest) = sql.strip_prefix("/*") {
            match rest.split_once("*/") {
                Some((_, after)) => sql = after,
                None => return true, // an unterminated comment is a comment
            }
        } else {
            return sql.is_empty();
        }
    }
}

type AuthCallback = unsafe extern "C" fn(
    *mut c_void,
    c_int,
    *const c_char,
    *const c_char,
    *const c_char,
    *const c_char,
) -> c_int;

/// The authorizer: `READ` for a read-only connection.
unsafe extern "C" fn authorize<const READ: bool>(
    _: *mut c_void,
    action: c_int,
    arg1: *const c_char,
    arg2: *const c_char,
    _: *const c_char,
    _: *const c_char,
) -> c_int {
    // SAFETY: SQLite passes NUL-terminated strings or null.
    let (arg1, arg2) = unsafe { (text(arg1), text(arg2)) };
    match (READ, action) {
        (_, ffi::SQLITE_READ | ffi::SQLITE_SELECT | ffi::SQLITE_RECURSIVE) => ffi::SQLITE_OK,
        (true, _) => common(action, arg1, arg2).unwrap_or(ffi::SQLITE_DENY),
        (false, _) => common(action, arg1, arg2).unwrap_or(ffi::SQLITE_OK),
    }
}

/// The rules of both kinds of connection; `None`: the kind decides.
fn common(action: c_int, arg1: Option<&str>, arg2: Option<&str>) -> Option<c_int> {
    match action {
        ffi::SQLITE_ATTACH | ffi::SQLITE_DETACH => Some(ffi::SQLITE_DENY),
        ffi::SQLITE_PRAGMA => {
            let name = arg1.unwrap_or("").to_ascii_lowercase();
            Some(match SAFE_PRAGMAS.contains(&name.as_str()) {
                true => ffi::SQLITE_OK,
                false => ffi::SQLITE_DENY,
            })
        }
        // arg2 is the function's name (arg1 is unused for functions).
        ffi::SQLITE_FUNCTION => Some(match arg2.map(str::to_ascii_lowercase).as_deref() {
            Some("load_extension") => ffi::SQLITE_DENY,
            _ => ffi::SQLITE_OK,
        }),
        _ => None,
    }
}

/// A C string from SQLite, if present and UTF-8.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that outlives the use.
unsafe fn text<'a>(p: *const c_char) -> Option<&'a str> {
    // SAFETY: the caller's contract.
    (!p.is_null())
        .then(|| unsafe { CStr::from_ptr(p) }.to_str().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::only_comments;

    #[test]
    fn what_may_follow_the_one_statement() {
        assert!(only_comments(""));
        assert!(only_comments(" ; -- done\n /* and */ ;"));
        assert!(!only_comments("; DROP TABLE people"));
        assert!(!only_comments("-- x\nSELECT 1"));
    }
}
