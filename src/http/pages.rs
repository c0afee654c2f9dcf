//! The small pages around the report: the sign-in form and the pages that say no (403,
//! 404, ...). Self-contained like the report (inline style, no script), built with
//! `maud`, which escapes every value.

use maud::{html, Markup, PreEscaped, DOCTYPE};

const STYLE: &str = r#"
body { margin: 10vh auto; max-width: 440px; padding: 24px; color: #1d2733; background: #f6f7f9;
  font-family: "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "PingFang SC",
    "Microsoft YaHei", sans-serif; }
main { background: #fff; border-radius: 6px; padding: 20px 24px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
h1 { font-size: 20px; margin-top: 0; }
label { display: block; margin: 12px 0 4px; }
input[type=password] { width: 100%; box-sizing: border-box; padding: 6px; font: inherit; }
button { margin-top: 16px; padding: 6px 16px; font: inherit; }
.problem { color: #b3261e; }
a { color: #1f6fb4; }
"#;

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { main { (body) } }
        }
    }
}

/// The sign-in form: a bearer token in, a session cookie out. `next` is where to go
/// after (already checked to be one of the report's own paths); `problem` says why the
/// last attempt failed.
pub fn signin(next: &str, problem: Option<&str>) -> Markup {
    layout(
        "登录 Sign in · voucher-ledger",
        html! {
            h1 { "算力券报告 登录" br; small { "Sign in to the computing-power voucher report" } }
            @if let Some(problem) = problem {
                p.problem id="signin-problem" { (problem) }
            }
            form id="signin" method="post" action="/signin" {
                input type="hidden" name="next" value=(next);
                label for="token" { "访问令牌 Bearer token(财政局或审计 bureau or auditor)" }
                input id="token" type="password" name="token" autocomplete="off" required;
                button type="submit" { "登录 Sign in" }
            }
        },
    )
}

/// A page that says what went wrong, with a way back to the sign-in.
pub fn message(title_chinese: &str, title_english: &str, text: &str) -> Markup {
    layout(
        &format!("{title_chinese} {title_english} · voucher-ledger"),
        html! {
            h1 id="message" { (title_chinese) " " (title_english) }
            p { (text) }
            p { a href="/signin" { "登录 Sign in" } }
        },
    )
}
