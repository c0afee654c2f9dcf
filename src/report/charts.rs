//! The report's charts, drawn by `plotters` into SVG text that the page inlines (no file,
//! no request). Labels are Chinese with English beside them; the browser renders the
//! text, so CJK needs only a local font (plotters is built without its font loader and
//! only estimates text sizes).
//!
//! Amounts are drawn in 万元 (ten thousand yuan). They become `f64` here, for drawing
//! only: every figure a person can read off the page as a number comes from `Money`.

use plotters::prelude::*;

use super::figures::{
    CenterRow, DiscrepancyCount, EnterpriseRow, ReceivableFigures, StatusRow, TierRow,
};
use super::series::PoolPoint;
use crate::domain::{Date, Money};

/// A chart that could not be drawn, and why.
#[derive(Debug, thiserror::Error)]
#[error("drawing the chart {chart}: {message}")]
pub struct ChartError {
    pub chart: &'static str,
    pub message: String,
}

/// The page's width for every chart, in pixels.
const WIDTH: u32 = 960;
const FONT: &str = "sans-serif";

/// One colour per meaning, the same in every chart.
const REDEEMED: RGBColor = RGBColor(0x1f, 0x6f, 0xb4);
const HELD: RGBColor = RGBColor(0xf2, 0x9e, 0x38);
const RECEIVABLE: RGBColor = RGBColor(0xc9, 0x3c, 0x37);
const FREE: RGBColor = RGBColor(0xb9, 0xd8, 0xb0);
const RELEASED: RGBColor = RGBColor(0x6d, 0x4c, 0x9f);
const PAID: RGBColor = RGBColor(0x2e, 0x8b, 0x57);
const DUE: RGBColor = RGBColor(0xf2, 0x9e, 0x38);
const UNSETTLED: RGBColor = RGBColor(0x9e, 0xb7, 0xd6);
const NEUTRAL: RGBColor = RGBColor(0x5b, 0x6b, 0x7f);

/// An amount in 万元, for drawing.
fn wan(amount: Money) -> f64 {
    amount.to_fen_wide() as f64 / 1_000_000.0
}

/// Axis numbers with thousands separators: 25,000.
fn axis_number(value: f64) -> String {
    if value.abs() < 10.0 && value.fract() != 0.0 {
        return format!("{value:.1}");
    }
    let whole = format!("{:.0}", value.abs());
    let mut grouped = String::new();
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if value < 0.0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

/// The top of a value axis: a little above the largest value, never zero.
fn axis_top(largest: f64) -> f64 {
    if largest > 0.0 {
        largest * 1.08
    } else {
        1.0
    }
}

/// Shortens a label to `most` characters, keeping its start and its end (names that
/// differ only in a number at the end stay apart); the table has it whole.
fn shorten(text: &str, most: usize) -> String {
    let count = text.chars().count();
    if count <= most {
        return text.to_string();
    }
    let head = most / 2;
    let tail = most.saturating_sub(head + 1);
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(count - tail).collect();
    format!("{start}…{end}")
}

/// Runs `draw` on an SVG canvas of `height` and returns the SVG text.
fn svg(
    chart: &'static str,
    height: u32,
    draw: impl FnOnce(
        &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    ) -> Result<(), Box<dyn std::error::Error>>,
) -> Result<String, ChartError> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (WIDTH, height)).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(|error| error.to_string())
            .and_then(|()| draw(&root).map_err(|error| error.to_string()))
            .and_then(|()| root.present().map_err(|error| error.to_string()));
        drawn.map_err(|message| ChartError { chart, message })?;
    }
    Ok(text)
}

/// A legend entry's swatch.
fn swatch(color: RGBColor) -> impl Fn((i32, i32)) -> Rectangle<(i32, i32)> {
    move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], color.filled())
}

/// One band of the pool chart: its legend label, colour, and its top at a point.
type Band = (&'static str, RGBColor, fn(&PoolPoint) -> f64);

/// Pool use over time: redeemed, receivable, held and free stacked up to the pool, and
/// the face value released so far as a line.
pub fn pool_use(points: &[PoolPoint]) -> Result<String, ChartError> {
    svg("pool-use", 440, |root| {
        let first = points
            .first()
            .map_or(0, |point| point.day.days_since_epoch());
        let last = points
            .last()
            .map_or(first + 1, |point| point.day.days_since_epoch())
            .max(first + 1);
        let top = axis_top(
            points
                .iter()
                .map(|point| wan(point.pool).max(wan(point.released)))
                .fold(0.0, f64::max),
        );
        let mut chart = ChartBuilder::on(root)
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(first..last, 0.0..top)?;
        let day_label = |day: &i32| Date::from_days_since_epoch(*day).to_string();
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(8)
            .x_label_formatter(&day_label)
            .y_label_formatter(&|value| axis_number(*value))
            .y_desc("万元 10k yuan")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        // Stacked from the bottom: redeemed, receivable, held, free (their sum is the
        // pool). The tallest band is drawn first so each lower one covers its base.
        let bands: [Band; 4] = [
            ("空闲 Free", FREE, |point| {
                wan(point.redeemed) + wan(point.receivable) + wan(point.held) + wan(point.free)
            }),
            ("已批未兑 Held (approved)", HELD, |point| {
                wan(point.redeemed) + wan(point.receivable) + wan(point.held)
            }),
            ("应收追回 Receivable", RECEIVABLE, |point| {
                wan(point.redeemed) + wan(point.receivable)
            }),
            ("已兑付 Redeemed", REDEEMED, |point| wan(point.redeemed)),
        ];
        for (label, color, height_of) in bands {
            chart
                .draw_series(
                    AreaSeries::new(
                        points
                            .iter()
                            .map(|point| (point.day.days_since_epoch(), height_of(point))),
                        0.0,
                        color.mix(0.85),
                    )
                    .border_style(color.stroke_width(1)),
                )?
                .label(label)
                .legend(swatch(color));
        }
        chart
            .draw_series(LineSeries::new(
                points
                    .iter()
                    .map(|point| (point.day.days_since_epoch(), wan(point.released))),
                RELEASED.stroke_width(3),
            ))?
            .label("已释放(累计) Released")
            .legend(swatch(RELEASED));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font((FONT, 13))
            .draw()?;
        Ok(())
    })
}

/// One part of a stacked bar: its legend label, colour, and value per category.
struct Part {
    label: &'static str,
    color: RGBColor,
    values: Vec<f64>,
}

/// Horizontal stacked bars, one row per category, the first category on top.
fn horizontal_bars(
    chart_name: &'static str,
    categories: &[String],
    parts: &[Part],
    value_desc: &str,
) -> Result<String, ChartError> {
    // At least two rows: a one-value axis has no length to divide.
    let rows = categories.len().max(2);
    let height = (rows as u32).saturating_mul(24).saturating_add(110);
    svg(chart_name, height, |root| {
        let top = axis_top(
            (0..categories.len())
                .map(|row| parts.iter().map(|part| part.values[row]).sum::<f64>())
                .fold(0.0, f64::max),
        );
        let last = rows as i32 - 1;
        let mut chart = ChartBuilder::on(root)
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(300)
            .build_cartesian_2d(0.0..top, (0..last).into_segmented())?;
        // Row 0 is drawn at the top: the axis runs upwards, so rows are flipped.
        let row_of = |value: &SegmentValue<i32>| match value {
            SegmentValue::CenterOf(index) | SegmentValue::Exact(index) => {
                let row = (last - *index) as usize;
                categories.get(row).cloned().unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(rows)
            .x_labels(8)
            .y_label_formatter(&row_of)
            .x_label_formatter(&|value| axis_number(*value))
            .x_desc(value_desc)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        for (index, part) in parts.iter().enumerate() {
            let color = part.color;
            chart
                .draw_series((0..categories.len()).map(|row| {
                    let start: f64 = parts[..index].iter().map(|before| before.values[row]).sum();
                    let end = start + part.values[row];
                    let position = last - row as i32;
                    let mut bar = Rectangle::new(
                        [
                            (start, SegmentValue::Exact(position)),
                            (end, SegmentValue::Exact(position + 1)),
                        ],
                        color.filled(),
                    );
                    bar.set_margin(3, 3, 0, 0);
                    bar
                }))?
                .label(part.label)
                .legend(swatch(color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font((FONT, 13))
            .draw()?;
        Ok(())
    })
}

/// Vertical bars, one per category, with a note above each (a count, say).
fn vertical_bars(
    chart_name: &'static str,
    categories: &[String],
    values: &[f64],
    notes: &[String],
    colors: &[RGBColor],
    value_desc: &str,
) -> Result<String, ChartError> {
    svg(chart_name, 360, |root| {
        let columns = categories.len().max(2);
        let last = columns as i32 - 1;
        let top = axis_top(values.iter().copied().fold(0.0, f64::max));
        let mut chart = ChartBuilder::on(root)
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(80)
            .build_cartesian_2d((0..last).into_segmented(), 0.0..top)?;
        let column_of = |value: &SegmentValue<i32>| match value {
            SegmentValue::CenterOf(index) | SegmentValue::Exact(index) => {
                categories.get(*index as usize).cloned().unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(columns)
            .y_labels(6)
            .x_label_formatter(&column_of)
            .y_label_formatter(&|value| axis_number(*value))
            .y_desc(value_desc)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        chart.draw_series(values.iter().enumerate().map(|(index, value)| {
            let color = colors.get(index).copied().unwrap_or(NEUTRAL);
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(index as i32), 0.0),
                    (SegmentValue::Exact(index as i32 + 1), *value),
                ],
                color.filled(),
            );
            bar.set_margin(0, 0, 24, 24);
            bar
        }))?;
        chart.draw_series(notes.iter().enumerate().map(|(index, note)| {
            Text::new(
                note.clone(),
                (
                    SegmentValue::CenterOf(index as i32),
                    values.get(index).copied().unwrap_or(0.0) + top * 0.02,
                ),
                (FONT, 13)
                    .into_font()
                    .color(&BLACK)
                    .pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Bottom,
                    )),
            )
        }))?;
        Ok(())
    })
}

/// The year's vouchers by facility tier: face value split into redeemed, still held,
/// owed back by centers, and released.
pub fn subsidy_by_tier(tiers: &[TierRow]) -> Result<String, ChartError> {
    let categories: Vec<String> = tiers
        .iter()
        .map(|row| format!("{} ({} 张 vouchers)", tier_label(row.tier), row.vouchers))
        .collect();
    let parts = [
        Part {
            label: "已兑付 Redeemed",
            color: REDEEMED,
            values: tiers.iter().map(|row| wan(row.redeemed)).collect(),
        },
        Part {
            label: "应收追回 Owed back",
            color: RECEIVABLE,
            values: tiers
                .iter()
                .map(|row| wan(row.clawback_outstanding))
                .collect(),
        },
        Part {
            label: "未兑付 Remaining",
            color: HELD,
            values: tiers.iter().map(|row| wan(row.remaining)).collect(),
        },
        Part {
            label: "已释放 Released",
            color: RELEASED,
            values: tiers.iter().map(|row| wan(row.released)).collect(),
        },
    ];
    horizontal_bars(
        "subsidy-by-tier",
        &categories,
        &parts,
        "券面额 万元 Face value, 10k yuan",
    )
}

/// The facility tier in Chinese and English.
pub fn tier_label(tier: crate::domain::FacilityTier) -> &'static str {
    match tier {
        crate::domain::FacilityTier::Domestic => "信创算力 Domestic",
        crate::domain::FacilityTier::MaasMultimodal => "多模态MaaS Multimodal MaaS",
        crate::domain::FacilityTier::Other => "其他 Other",
    }
}

/// The top enterprises by subsidy redeemed, with what they still hold.
pub fn top_enterprises(rows: &[EnterpriseRow]) -> Result<String, ChartError> {
    let categories: Vec<String> = rows
        .iter()
        .map(|row| shorten(row.name.as_str(), 28))
        .collect();
    let parts = [
        Part {
            label: "已兑付 Redeemed",
            color: REDEEMED,
            values: rows.iter().map(|row| wan(row.usage.redeemed)).collect(),
        },
        Part {
            label: "应收追回 Owed back",
            color: RECEIVABLE,
            values: rows.iter().map(|row| wan(row.usage.receivable)).collect(),
        },
        Part {
            label: "已批未兑 Held",
            color: HELD,
            values: rows.iter().map(|row| wan(row.usage.held)).collect(),
        },
    ];
    horizontal_bars("top-enterprises", &categories, &parts, "万元 10k yuan")
}

/// What each center was paid, is due on statements, and has not yet had settled; the
/// centers with the most money first, at most `limit` of them.
pub fn centers_due_and_paid(rows: &[CenterRow], limit: usize) -> Result<String, ChartError> {
    let mut ordered: Vec<&CenterRow> = rows.iter().collect();
    ordered.sort_by(|left, right| {
        let total = |row: &CenterRow| row.paid.plus(row.due).plus(row.unsettled);
        total(right)
            .cmp(&total(left))
            .then(left.center.cmp(&right.center))
    });
    ordered.truncate(limit);
    let categories: Vec<String> = ordered
        .iter()
        .map(|row| shorten(row.name.as_str(), 28))
        .collect();
    let parts = [
        Part {
            label: "已支付 Paid",
            color: PAID,
            values: ordered.iter().map(|row| wan(row.paid)).collect(),
        },
        Part {
            label: "应付(已出账) Due on statements",
            color: DUE,
            values: ordered.iter().map(|row| wan(row.due)).collect(),
        },
        Part {
            label: "未结算 Not yet settled",
            color: UNSETTLED,
            values: ordered.iter().map(|row| wan(row.unsettled)).collect(),
        },
    ];
    horizontal_bars("centers-due-paid", &categories, &parts, "万元 10k yuan")
}

/// The statement state in Chinese and English.
pub fn statement_state_label(state: crate::domain::StatementState) -> &'static str {
    match state {
        crate::domain::StatementState::Open => "待支付 Open",
        crate::domain::StatementState::Paid => "已支付 Paid",
        crate::domain::StatementState::Returned => "被退回 Returned",
    }
}

/// Statements by state: their net, with how many above each bar.
pub fn settlement_status(rows: &[StatusRow]) -> Result<String, ChartError> {
    let states = [
        crate::domain::StatementState::Open,
        crate::domain::StatementState::Paid,
        crate::domain::StatementState::Returned,
    ];
    let find = |state| rows.iter().find(|row| row.state == state);
    let categories: Vec<String> = states
        .iter()
        .map(|state| statement_state_label(*state).to_string())
        .collect();
    let values: Vec<f64> = states
        .iter()
        .map(|state| find(*state).map_or(0.0, |row| wan(row.net)))
        .collect();
    let notes: Vec<String> = states
        .iter()
        .map(|state| {
            format!(
                "{} 张 statements",
                find(*state).map_or(0, |row| row.statements)
            )
        })
        .collect();
    vertical_bars(
        "settlement-status",
        &categories,
        &values,
        &notes,
        &[DUE, PAID, RECEIVABLE],
        "净额 万元 Net, 10k yuan",
    )
}

/// Receivables: clawed back, and how it was recovered (offset, repaid) or is still owed.
pub fn receivables(figures: &ReceivableFigures) -> Result<String, ChartError> {
    let categories = [
        "追回总额 Clawed back",
        "已抵扣 Offset",
        "已归还 Repaid",
        "未收回 Outstanding",
    ]
    .map(String::from);
    let amounts = [
        figures.clawed_back,
        figures.offset,
        figures.repaid,
        figures.outstanding,
    ];
    let values = amounts.map(wan);
    let notes = amounts.map(|amount| format!("¥{}", super::summary::format_yuan(amount)));
    vertical_bars(
        "receivables",
        &categories,
        &values,
        &notes,
        &[RECEIVABLE, PAID, REDEEMED, HELD],
        "万元 10k yuan",
    )
}

/// Discrepancies found by the year's reconciliations, by kind.
pub fn reconciliation(discrepancies: &[DiscrepancyCount]) -> Result<String, ChartError> {
    let categories: Vec<String> = discrepancies
        .iter()
        .map(|kind| format!("{} {}", kind.label_chinese, kind.label_english))
        .collect();
    let parts = [Part {
        label: "差异 Discrepancies",
        color: RECEIVABLE,
        values: discrepancies.iter().map(|kind| kind.count as f64).collect(),
    }];
    horizontal_bars("reconciliation", &categories, &parts, "条 Lines")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_numbers_are_grouped_by_thousands() {
        assert_eq!(axis_number(25_000.0), "25,000");
        assert_eq!(axis_number(999.0), "999");
        assert_eq!(axis_number(1_234_567.0), "1,234,567");
        assert_eq!(axis_number(2.5), "2.5");
        assert_eq!(axis_number(0.0), "0");
    }

    #[test]
    fn long_labels_are_shortened_by_characters_not_bytes() {
        assert_eq!(shorten("杭州算力有限公司", 22), "杭州算力有限公司");
        assert_eq!(shorten("一二三四五六", 4), "一二…六");
        assert_eq!(
            shorten("Zhejiang AI Enterprise 0123 Co., Ltd.", 28),
            "Zhejiang AI En…123 Co., Ltd."
        );
    }
}
