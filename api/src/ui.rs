//! The admin UI: static files from `admin-ui/src`, compiled into the binary so a node needs no
//! separate web server.

use actix_web::{HttpResponse, web};

const INDEX: &str = include_str!("../../admin-ui/src/index.html");
const APP_JS: &str = include_str!("../../admin-ui/src/app.js");
const STYLE: &str = include_str!("../../admin-ui/src/style.css");

fn file(body: &'static str, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/",
        web::get().to(|| async { file(INDEX, "text/html; charset=utf-8") }),
    )
    .route(
        "/ui/app.js",
        web::get().to(|| async { file(APP_JS, "text/javascript; charset=utf-8") }),
    )
    .route(
        "/ui/style.css",
        web::get().to(|| async { file(STYLE, "text/css; charset=utf-8") }),
    );
}
