//! One `Host` per request. With two, the DNS-rebinding check behind this one reads the first
//! while a proxy in front may have routed by the second; which one counts would be a guess.

use hyper::{Request, StatusCode, header::HOST};

use super::reply::{Refusal, plain};

pub fn single_host<B>(req: &Request<B>) -> Result<(), Refusal> {
    if req.headers().get_all(HOST).iter().nth(1).is_some() {
        return Err(plain(StatusCode::BAD_REQUEST, "more than one Host header\n").into());
    }
    Ok(())
}
