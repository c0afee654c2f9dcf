//! The bureau's report as one self-contained HTML page: inline CSS, charts as inline SVG
//! ([`super::charts`]), no script, and a Content-Security-Policy that lets the page load
//! nothing from anywhere, so no request leaves it (as a file or served live).
//!
//! The markup is built with `maud`, which escapes every value it is given: legal names
//! and the like are user input. The only text put in unescaped is the SVG that plotters
//! wrote (it escapes the labels itself) and the constant style sheet.
//!
//! Every key figure is in an element with a stable id and its exact amount in fen in a
//! `data-fen` attribute (counts in `data-count`), so tests and scripts read them from
//! the page instead of parsing formatted numbers.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::charts::{self, ChartError};
use super::figures::{ReceivableFigures, ReconciliationFigures, ReportFigures};
use super::series::PoolPoint;
use super::summary::format_yuan;
use crate::domain::Money;
use crate::limits::REPORT_CHART_CENTERS_MAX;

/// Where the page is shown: written to a file, or served live to a signed-in person
/// (who gets a sign-out button).
#[derive(Clone, Copy, Debug)]
pub enum Page<'a> {
    File,
    Live { signed_in_as: &'a str },
}

/// The page's own policy: nothing may be fetched; only its inline style applies; its
/// only form (sign-out, live) posts back to where it came from.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Local fonts only: Noto CJK on Linux, PingFang on macOS, YaHei on Windows.
const STYLE: &str = r#"
:root { color-scheme: light; }
body { margin: 0 auto; max-width: 1000px; padding: 24px; color: #1d2733;
  font-family: "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "PingFang SC",
    "Microsoft YaHei", sans-serif; background: #f6f7f9; }
header { border-bottom: 3px solid #1f6fb4; margin-bottom: 16px; }
h1 { font-size: 26px; margin: 0 0 6px; }
h2 { font-size: 19px; margin: 28px 0 8px; }
.meta { color: #5b6b7f; font-size: 13px; margin: 0 0 12px; }
section { background: #fff; border-radius: 6px; padding: 12px 16px 16px; margin-bottom: 16px;
  box-shadow: 0 1px 2px rgba(0,0,0,.08); }
figure.chart { margin: 0; }
figure.chart svg { max-width: 100%; height: auto; display: block; }
figure.chart svg text { font-family: "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC",
  "PingFang SC", "Microsoft YaHei", sans-serif; }
figcaption { color: #5b6b7f; font-size: 13px; margin-top: 4px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 4px 8px; border-bottom: 1px solid #e3e7ec; text-align: left; }
td.amount, th.amount { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.totals td.amount { font-weight: 600; }
tr.total td { font-weight: 600; border-top: 2px solid #1d2733; }
.note { color: #5b6b7f; font-size: 14px; }
details summary { cursor: pointer; color: #1f6fb4; margin: 8px 0; }
form.signout { float: right; }
form.signout button { font: inherit; padding: 4px 12px; }
footer { color: #5b6b7f; font-size: 12px; margin-top: 24px; }
"#;

/// An amount cell: formatted for people, exact in fen for machines.
fn amount_cell(id: Option<&str>, amount: Money) -> Markup {
    let fen = amount.to_fen_wide().to_string();
    html! {
        td.amount id=[id] data-fen=(fen) { (format_yuan(amount)) }
    }
}

/// One labelled key figure: Chinese, then English.
struct KeyFigure {
    id: &'static str,
    chinese: &'static str,
    english: &'static str,
    amount: Money,
}

/// The key figures, in the order a bureau reads them: the pool, where it is, then where
/// every fen of subsidy is, then the cash.
fn key_figures(figures: &ReportFigures) -> Vec<KeyFigure> {
    let pool = &figures.pool;
    let book = &figures.settlement.book;
    let figure = |id, chinese, english, amount| KeyFigure {
        id,
        chinese,
        english,
        amount,
    };
    vec![
        figure("total-pool", "资金池", "Pool", pool.pool),
        figure(
            "total-approved",
            "累计批准券面额",
            "Face value approved",
            book.approved,
        ),
        figure(
            "total-held",
            "已批未兑",
            "Held by approved vouchers",
            pool.usage.held,
        ),
        figure(
            "total-redeemed",
            "已兑付补贴",
            "Subsidy redeemed (standing)",
            pool.usage.redeemed,
        ),
        figure(
            "total-receivable",
            "应收追回",
            "Receivable from centers",
            pool.usage.receivable,
        ),
        figure("total-free", "空闲额度", "Free", pool.free),
        figure(
            "total-released",
            "已释放",
            "Released back to the pool",
            pool.released,
        ),
        figure(
            "total-granted",
            "累计发放补贴",
            "Subsidy granted by redemptions",
            book.granted,
        ),
        figure(
            "total-reversed-unsettled",
            "结算前冲销",
            "Reversed before settlement",
            book.reversed_unsettled,
        ),
        figure(
            "total-unsettled",
            "未结算",
            "Not yet settled",
            book.unsettled,
        ),
        figure(
            "total-in-open-statements",
            "待支付结算单",
            "In open statements",
            book.standing_open,
        ),
        figure(
            "total-in-paid-statements",
            "已支付结算单",
            "In paid statements",
            book.standing_paid,
        ),
        figure("total-clawed-back", "追回", "Clawed back", book.clawed_back),
        figure(
            "total-offset",
            "已抵扣",
            "Offset against statements",
            book.offset,
        ),
        figure("total-repaid", "已归还", "Repaid by centers", book.repaid),
        figure(
            "total-outstanding",
            "未收回",
            "Still owed by centers",
            book.outstanding(),
        ),
        figure(
            "total-due",
            "应付(已出账)",
            "Due on statements",
            figures.centers.total.due,
        ),
        figure(
            "total-paid",
            "已支付",
            "Paid to centers (net of returns)",
            book.paid,
        ),
    ]
}

/// The whole page. Fails only if a chart cannot be drawn.
pub fn render(
    figures: &ReportFigures,
    series: &[PoolPoint],
    page: Page<'_>,
) -> Result<String, ChartError> {
    let year = figures.year;
    let settlement = &figures.settlement;
    let receivables = ReceivableFigures::of(&settlement.book);
    let pool_chart = charts::pool_use(series)?;
    let tier_chart = charts::subsidy_by_tier(&figures.vouchers.by_tier)?;
    let enterprise_chart = charts::top_enterprises(&figures.top_enterprises)?;
    let center_chart =
        charts::centers_due_and_paid(&figures.centers.rows, REPORT_CHART_CENTERS_MAX)?;
    let status_chart = charts::settlement_status(&settlement.by_state)?;
    let receivable_chart = charts::receivables(&receivables)?;
    let reconciliation_chart = match &figures.reconciliation {
        ReconciliationFigures::NoneRecorded => None,
        ReconciliationFigures::Recorded { discrepancies, .. } => {
            Some(charts::reconciliation(discrepancies)?)
        }
    };
    let vouchers: usize = figures.vouchers.by_status.values().sum();
    let as_of = figures.last_time.date();
    let markup = html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(CONTENT_SECURITY_POLICY);
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { "算力券 " (year) " 年度报告 · Computing-power vouchers: the " (year) " report" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    @if let Page::Live { signed_in_as } = page {
                        form.signout method="post" action="/signout" {
                            span.meta { "已登录 Signed in: " (signed_in_as) " " }
                            button type="submit" { "退出 Sign out" }
                        }
                    }
                    h1 { "算力券 " (year) " 年度报告 " small { "Computing-power vouchers: the " (year) " report" } }
                    p.meta id="as-of" data-sequence=(figures.last_sequence) {
                        "截至第 " (figures.last_sequence) " 条事件(" (as_of) ")· As of event "
                        (figures.last_sequence) " (" (as_of) ")"
                        @if figures.pool.closed { " · 年度已关闭 Year closed" }
                    }
                }

                section id="totals" {
                    h2 { "关键数字 Key totals" }
                    table.totals id="key-totals" {
                        thead { tr { th { "项目 Item" } th.amount { "金额(元) Amount, yuan" } } }
                        tbody {
                            @for figure in key_figures(figures) {
                                tr {
                                    th { (figure.chinese) " " (figure.english) }
                                    (amount_cell(Some(figure.id), figure.amount))
                                }
                            }
                        }
                    }
                    table.totals id="key-counts" {
                        tbody {
                            tr { th { "代金券 Vouchers" } td.amount id="count-vouchers" data-count=(vouchers) { (vouchers) } }
                            tr { th { "计算中心 Computing centers" } td.amount id="count-centers" data-count=(figures.centers.rows.len()) { (figures.centers.rows.len()) } }
                            tr { th { "企业 Enterprises" } td.amount id="count-enterprises" data-count=(figures.enterprises_registered) { (figures.enterprises_registered) } }
                            tr { th { "结算单 Statements" } td.amount id="count-statements" data-count=(settlement.statements) { (settlement.statements) } }
                            tr { th { "付款 Payments" } td.amount id="count-payments" data-count=(settlement.payments) { (settlement.payments) } }
                            tr { th { "被银行退回 Returned by the bank" } td.amount id="count-returned" data-count=(settlement.returned) { (settlement.returned) } }
                        }
                    }
                }

                section id="pool-use" {
                    h2 { "资金池使用 Pool use" }
                    figure.chart id="chart-pool-use" data-points=(series.len()) {
                        (PreEscaped(pool_chart))
                        figcaption {
                            "每日末资金池构成(万元):已兑付、应收追回、已批未兑与空闲之和为资金池;折线为累计释放。 "
                            "The pool at the end of each day (10k yuan): redeemed, receivable, held and free add up to the pool; the line is the face value released so far."
                        }
                    }
                }

                section id="tiers" {
                    h2 { "按设施类别的补贴 Subsidy by facility tier" }
                    figure.chart id="chart-subsidy-by-tier" {
                        (PreEscaped(tier_chart))
                        figcaption { "券面额按去向拆分(万元)。 Face value of the year's vouchers by where it is (10k yuan)." }
                    }
                    table id="tier-table" {
                        thead { tr {
                            th { "类别 Tier" } th.amount { "张数 Vouchers" } th.amount { "券面额 Face value" }
                            th.amount { "已兑付 Redeemed" } th.amount { "未兑付 Remaining" } th.amount { "已释放 Released" }
                        } }
                        tbody {
                            @for row in &figures.vouchers.by_tier {
                                tr data-tier=(row.tier.name()) {
                                    td { (charts::tier_label(row.tier)) }
                                    td.amount data-count=(row.vouchers) { (row.vouchers) }
                                    (amount_cell(None, row.face_value))
                                    (amount_cell(None, row.redeemed))
                                    (amount_cell(None, row.remaining))
                                    (amount_cell(None, row.released))
                                }
                            }
                        }
                    }
                }

                section id="enterprises" {
                    h2 { "补贴最多的 " (figures.top_enterprises.len()) " 家企业 Top " (figures.top_enterprises.len()) " enterprises by subsidy" }
                    figure.chart id="chart-top-enterprises" {
                        (PreEscaped(enterprise_chart))
                        figcaption { "已兑付补贴最多的企业(万元)。 Enterprises with the most subsidy redeemed (10k yuan)." }
                    }
                    table id="enterprise-table" {
                        thead { tr {
                            th { "企业 Enterprise" } th { "统一社会信用代码 USCC" } th.amount { "额度 Cap" }
                            th.amount { "已兑付 Redeemed" } th.amount { "已批未兑 Held" }
                        } }
                        tbody {
                            @for row in &figures.top_enterprises {
                                tr data-uscc=(row.enterprise) {
                                    td { (row.name.as_str()) }
                                    td { (row.enterprise) }
                                    (amount_cell(None, row.cap))
                                    (amount_cell(None, row.usage.redeemed))
                                    (amount_cell(None, row.usage.held))
                                }
                            }
                        }
                    }
                }

                section id="centers" {
                    h2 { "各计算中心应付与已付 Amount due and paid by center" }
                    figure.chart id="chart-centers-due-paid" {
                        (PreEscaped(center_chart))
                        figcaption {
                            "金额最大的 " (REPORT_CHART_CENTERS_MAX.min(figures.centers.rows.len())) " 家中心(万元);下表列出全部中心。 "
                            "The " (REPORT_CHART_CENTERS_MAX.min(figures.centers.rows.len())) " centers with the most money (10k yuan); the table lists every center."
                        }
                    }
                    details {
                        summary { "全部 " (figures.centers.rows.len()) " 家中心 All " (figures.centers.rows.len()) " centers" }
                        table id="center-table" {
                            thead { tr {
                                th { "中心 Center" } th { "状态 Status" } th.amount { "已兑付 Redeemed" }
                                th.amount { "未结算 Unsettled" } th.amount { "应付 Due" } th.amount { "应退回 Owed back" } th.amount { "已支付 Paid" }
                            } }
                            tbody {
                                @for row in &figures.centers.rows {
                                    tr data-uscc=(row.center) {
                                        td { (row.name.as_str()) br; small { (row.center) } }
                                        td { (row.status.name()) }
                                        (amount_cell(None, row.standing))
                                        (amount_cell(None, row.unsettled))
                                        (amount_cell(None, row.due))
                                        (amount_cell(None, row.outstanding))
                                        (amount_cell(None, row.paid))
                                    }
                                }
                                tr.total {
                                    td { "合计 All centers" } td {}
                                    (amount_cell(Some("centers-total-standing"), figures.centers.total.standing))
                                    (amount_cell(Some("centers-total-unsettled"), figures.centers.total.unsettled))
                                    (amount_cell(Some("centers-total-due"), figures.centers.total.due))
                                    (amount_cell(Some("centers-total-outstanding"), figures.centers.total.outstanding))
                                    (amount_cell(Some("centers-total-paid"), figures.centers.total.paid))
                                }
                            }
                        }
                    }
                }

                @if let Some(payees) = &figures.payees {
                    // A reimbursement year pays enterprises: the centers' table above
                    // shows no money owed to centers, this one shows who is owed.
                    section id="payees" {
                        h2 { "各企业应付与已付(先支付后补贴)Amount due and paid by enterprise (reimbursement)" }
                        details open {
                            summary { (payees.rows.len()) " 家企业 " (payees.rows.len()) " enterprises" }
                            table id="payee-table" {
                                thead { tr {
                                    th { "企业 Enterprise" } th.amount { "已结算 Settled" } th.amount { "应付 Due" }
                                    th.amount { "应退回 Owed back" } th.amount { "已支付 Paid" }
                                } }
                                tbody {
                                    @for row in &payees.rows {
                                        tr data-uscc=(row.payee) {
                                            td {
                                                @if let Some(name) = &row.name { (name.as_str()) br; }
                                                small { (row.payee) }
                                            }
                                            (amount_cell(None, row.totals.settled))
                                            (amount_cell(None, row.totals.due))
                                            (amount_cell(None, row.totals.outstanding))
                                            (amount_cell(None, row.totals.paid))
                                        }
                                    }
                                    tr.total {
                                        td { "合计 All enterprises" }
                                        (amount_cell(Some("payees-total-settled"), payees.total.settled))
                                        (amount_cell(Some("payees-total-due"), payees.total.due))
                                        (amount_cell(Some("payees-total-outstanding"), payees.total.outstanding))
                                        (amount_cell(Some("payees-total-paid"), payees.total.paid))
                                    }
                                }
                            }
                        }
                    }
                }

                @if let Some(second) = &figures.second_source {
                    section id="second-source" {
                        h2 { "叠加资金来源 Second funding source: " (second.name.as_str()) }
                        table.totals id="second-source-totals" {
                            thead { tr { th { "项目 Item" } th.amount { "金额(元) Amount, yuan" } } }
                            tbody {
                                tr { td { "资金池 Pool" } (amount_cell(Some("second-pool"), second.book.pool)) }
                                tr { td { "券占用 Held by vouchers' second shares" } (amount_cell(Some("second-held"), second.book.usage.held)) }
                                tr { td { "已兑付 Redeemed" } (amount_cell(Some("second-redeemed"), second.book.usage.redeemed)) }
                                tr { td { "应收追回 Owed back to it" } (amount_cell(Some("second-receivable"), second.book.usage.receivable)) }
                                tr { td { "可用余额 Free" } (amount_cell(Some("second-free"), second.book.usage.free_under(second.book.pool))) }
                                tr { td { "已支付 Paid by it" } (amount_cell(Some("second-paid"), second.book.paid)) }
                                @for row in &second.by_state {
                                    tr { td { "结算单 Statements " (row.state.name()) " (" (row.statements) ")" } (amount_cell(None, row.net)) }
                                }
                            }
                        }
                    }
                }

                section id="settlement" {
                    h2 { "结算状态 Settlement status" }
                    figure.chart id="chart-settlement-status" {
                        (PreEscaped(status_chart))
                        figcaption {
                            "各状态结算单的净额(万元)与张数;共 " (settlement.statements) " 张结算单、" (settlement.payments) " 笔付款(" (settlement.returned) " 笔被退回)。 "
                            "Net of the statements in each state (10k yuan) and how many: " (settlement.statements) " statements, "
                            (settlement.payments) " payments (" (settlement.returned) " returned by the bank)."
                        }
                    }
                }

                section id="receivables" {
                    h2 { "应收追回 Receivables" }
                    figure.chart id="chart-receivables" {
                        (PreEscaped(receivable_chart))
                        figcaption { "追回总额 = 已抵扣 + 已归还 + 未收回。 Clawed back = offset + repaid + outstanding." }
                    }
                }

                section id="reconciliation" {
                    h2 { "对账差异 Reconciliation discrepancies" }
                    @match (&figures.reconciliation, reconciliation_chart) {
                        (ReconciliationFigures::Recorded { reconciliations, .. }, Some(chart)) => {
                            figure.chart id="chart-reconciliation" {
                                (PreEscaped(chart))
                                figcaption { "本年度 " (reconciliations) " 次对账发现的差异,按类别。 Discrepancies found by the year's " (reconciliations) " reconciliations, by kind." }
                            }
                        }
                        _ => {
                            p.note id="reconciliation-none" { "尚无对账记录。 No reconciliation recorded yet." }
                        }
                    }
                }

                footer {
                    "由 voucher-ledger 从 SM3 哈希链事件日志生成;本页不发出任何网络请求。 "
                    "Generated by voucher-ledger from its SM3-chained event log; this page makes no network request."
                }
            }
        }
    };
    Ok(markup.into_string())
}
