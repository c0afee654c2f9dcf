//! The matcher: parsed file rows and the ledger's facts in, report lines out. Pure: no
//! I/O, no clock, no hash-map order; the same inputs give the same lines in the same
//! order (file lines first, by line number, then the ledger's lines by reference).
//!
//! Center invoices, per invoice number (canonical form):
//!
//! | file | ledger (issued in the period) | line |
//! |---|---|---|
//! | a second row of a number | | `DuplicateInFile` (the first row is matched) |
//! | row | none | `InFileNotInLedger` |
//! | row | reversed | `ReversedButClaimed` |
//! | row | amount differs / subsidy differs | `AmountMismatch` / `SubsidyMismatch` (both if both) |
//! | row | same amount and subsidy | `Matched` |
//! | none | standing | `InLedgerNotInFile` (a reversed one absent from the file agrees) |
//!
//! Bank payments, per bank reference, against the year's statements and their payments:
//!
//! | file | ledger | line |
//! |---|---|---|
//! | a second row of a reference | | `DuplicateInFile` |
//! | row | a returned payment | `ReturnedButPaid` |
//! | row | the current payment, another amount | `AmountMismatch` |
//! | row | the current payment, another payee | `PayeeMismatch` |
//! | row | the current payment | `Matched` |
//! | row, unknown reference | a paid statement of that payee with that net | `StatementPaidTwice` |
//! | row, unknown reference | otherwise | `PaymentWithoutStatement` |
//! | none | a statement paid by a reference | `StatementNotPaid` |

use std::collections::BTreeMap;

use super::rows::{InvoiceRow, PaymentRow};
use crate::domain::{
    BankReference, Date, DiscrepancyKind, InvoiceNumber, Money, StatementId, Uscc,
};

/// A ledger invoice of the center, issued in the period.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LedgerInvoice {
    pub invoice_number: InvoiceNumber,
    pub issue_date: Date,
    pub amount: Money,
    pub subsidy: Money,
    pub reversed: bool,
}

/// A statement of the year, with the center it pays and every payment made of it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LedgerStatement {
    pub id: StatementId,
    pub center: Uscc,
    pub net: Money,
    /// Paid now (by its last payment, or with nothing to pay).
    pub paid: bool,
    pub payments: Vec<LedgerPayment>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LedgerPayment {
    pub bank_reference: BankReference,
    pub amount: Money,
    pub value_date: Date,
    pub returned: bool,
}

/// The ledger's side of a line.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct LedgerSide {
    pub amount: Option<Money>,
    pub subsidy: Option<Money>,
    pub date: Option<Date>,
    pub statement: Option<StatementId>,
    pub payee: Option<Uscc>,
    pub reversed: bool,
}

/// The file's side of a line.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct FileSide {
    pub line: Option<u32>,
    pub amount: Option<Money>,
    pub subsidy: Option<Money>,
    pub date: Option<Date>,
    pub payee: Option<Uscc>,
    pub payee_name: Option<String>,
    /// For a duplicate: the line of the first row with the same reference.
    pub first_line: Option<u32>,
}

/// One line of the report.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DiscrepancyLine {
    pub kind: DiscrepancyKind,
    /// The invoice number or bank reference, canonical.
    pub reference: String,
    pub ledger: Option<LedgerSide>,
    pub file: Option<FileSide>,
}

impl DiscrepancyLine {
    /// Sorting key: file lines first by line number, then ledger-only lines by reference.
    fn order(&self) -> (u32, String, DiscrepancyKind) {
        let line = self
            .file
            .as_ref()
            .and_then(|file| file.line)
            .unwrap_or(u32::MAX);
        (line, self.reference.clone(), self.kind)
    }

    /// The line as one sentence, naming both sides' values.
    pub fn describe(&self) -> String {
        let show = |money: Option<Money>| money.map_or("-".to_owned(), |money| money.to_string());
        let mut parts = vec![format!("{} {}", self.kind.name(), self.reference)];
        if let Some(file) = &self.file {
            let mut text = format!(
                "file line {}: amount {}",
                file.line.map_or("-".to_owned(), |line| line.to_string()),
                show(file.amount)
            );
            if let Some(subsidy) = file.subsidy {
                text.push_str(&format!(", subsidy {subsidy}"));
            }
            if let Some(date) = file.date {
                text.push_str(&format!(", date {date}"));
            }
            if let Some(payee) = file.payee {
                text.push_str(&format!(", payee {payee}"));
            }
            if let Some(first) = file.first_line {
                text.push_str(&format!(", first seen on line {first}"));
            }
            parts.push(text);
        }
        if let Some(ledger) = &self.ledger {
            let mut text = format!("ledger: amount {}", show(ledger.amount));
            if let Some(subsidy) = ledger.subsidy {
                text.push_str(&format!(", subsidy {subsidy}"));
            }
            if let Some(date) = ledger.date {
                text.push_str(&format!(", date {date}"));
            }
            if let Some(statement) = ledger.statement {
                text.push_str(&format!(", statement {statement}"));
            }
            if let Some(payee) = ledger.payee {
                text.push_str(&format!(", payee {payee}"));
            }
            if ledger.reversed {
                text.push_str(", reversed");
            }
            parts.push(text);
        }
        parts.join("; ")
    }
}

fn sorted(mut lines: Vec<DiscrepancyLine>) -> Vec<DiscrepancyLine> {
    lines.sort_by_key(DiscrepancyLine::order);
    lines
}

fn invoice_file_side(row: &InvoiceRow) -> FileSide {
    FileSide {
        line: Some(row.line),
        amount: Some(row.amount),
        subsidy: Some(row.subsidy),
        date: Some(row.issue_date),
        ..FileSide::default()
    }
}

fn invoice_ledger_side(invoice: &LedgerInvoice) -> LedgerSide {
    LedgerSide {
        amount: Some(invoice.amount),
        subsidy: Some(invoice.subsidy),
        date: Some(invoice.issue_date),
        reversed: invoice.reversed,
        ..LedgerSide::default()
    }
}

/// Matches a center's invoice list with the ledger's invoices of the center and period.
pub fn match_center_invoices(
    rows: &[InvoiceRow],
    ledger: &[LedgerInvoice],
) -> Vec<DiscrepancyLine> {
    let ledger_by_number: BTreeMap<&InvoiceNumber, &LedgerInvoice> = ledger
        .iter()
        .map(|invoice| (&invoice.invoice_number, invoice))
        .collect();
    let mut first_line: BTreeMap<&InvoiceNumber, u32> = BTreeMap::new();
    let mut lines = Vec::new();
    for row in rows {
        let reference = row.invoice_number.as_str().to_owned();
        if let Some(first) = first_line.get(&row.invoice_number) {
            lines.push(DiscrepancyLine {
                kind: DiscrepancyKind::DuplicateInFile,
                reference,
                ledger: None,
                file: Some(FileSide {
                    first_line: Some(*first),
                    ..invoice_file_side(row)
                }),
            });
            continue;
        }
        first_line.insert(&row.invoice_number, row.line);
        let line = |kind| DiscrepancyLine {
            kind,
            reference: reference.clone(),
            ledger: ledger_by_number
                .get(&row.invoice_number)
                .map(|invoice| invoice_ledger_side(invoice)),
            file: Some(invoice_file_side(row)),
        };
        match ledger_by_number.get(&row.invoice_number) {
            None => lines.push(line(DiscrepancyKind::InFileNotInLedger)),
            Some(invoice) if invoice.reversed => {
                lines.push(line(DiscrepancyKind::ReversedButClaimed))
            }
            Some(invoice) => {
                let amount_differs = invoice.amount != row.amount;
                let subsidy_differs = invoice.subsidy != row.subsidy;
                if amount_differs {
                    lines.push(line(DiscrepancyKind::AmountMismatch));
                }
                if subsidy_differs {
                    lines.push(line(DiscrepancyKind::SubsidyMismatch));
                }
                if !amount_differs && !subsidy_differs {
                    lines.push(line(DiscrepancyKind::Matched));
                }
            }
        }
    }
    for invoice in ledger {
        if !invoice.reversed && !first_line.contains_key(&invoice.invoice_number) {
            lines.push(DiscrepancyLine {
                kind: DiscrepancyKind::InLedgerNotInFile,
                reference: invoice.invoice_number.as_str().to_owned(),
                ledger: Some(invoice_ledger_side(invoice)),
                file: None,
            });
        }
    }
    sorted(lines)
}

fn payment_file_side(row: &PaymentRow) -> FileSide {
    FileSide {
        line: Some(row.line),
        amount: Some(row.amount),
        date: Some(row.value_date),
        payee: Some(row.payee),
        payee_name: Some(row.payee_name.clone()),
        ..FileSide::default()
    }
}

/// Matches the bank's payment file with a year's statements and their payments.
pub fn match_bank_payments(
    rows: &[PaymentRow],
    statements: &[LedgerStatement],
) -> Vec<DiscrepancyLine> {
    let mut by_reference: BTreeMap<&BankReference, (&LedgerStatement, &LedgerPayment)> =
        BTreeMap::new();
    for statement in statements {
        for payment in &statement.payments {
            by_reference.insert(&payment.bank_reference, (statement, payment));
        }
    }
    let payment_side = |statement: &LedgerStatement, payment: &LedgerPayment| LedgerSide {
        amount: Some(payment.amount),
        date: Some(payment.value_date),
        statement: Some(statement.id),
        payee: Some(statement.center),
        reversed: payment.returned,
        ..LedgerSide::default()
    };
    let mut first_line: BTreeMap<&BankReference, u32> = BTreeMap::new();
    let mut lines = Vec::new();
    for row in rows {
        let reference = row.bank_reference.as_str().to_owned();
        if let Some(first) = first_line.get(&row.bank_reference) {
            lines.push(DiscrepancyLine {
                kind: DiscrepancyKind::DuplicateInFile,
                reference,
                ledger: None,
                file: Some(FileSide {
                    first_line: Some(*first),
                    ..payment_file_side(row)
                }),
            });
            continue;
        }
        first_line.insert(&row.bank_reference, row.line);
        let file = Some(payment_file_side(row));
        match by_reference.get(&row.bank_reference) {
            Some((statement, payment)) => {
                let ledger = Some(payment_side(statement, payment));
                let mut kinds = Vec::new();
                if payment.returned {
                    kinds.push(DiscrepancyKind::ReturnedButPaid);
                } else {
                    if payment.amount != row.amount {
                        kinds.push(DiscrepancyKind::AmountMismatch);
                    }
                    if statement.center != row.payee {
                        kinds.push(DiscrepancyKind::PayeeMismatch);
                    }
                    if kinds.is_empty() {
                        kinds.push(DiscrepancyKind::Matched);
                    }
                }
                for kind in kinds {
                    lines.push(DiscrepancyLine {
                        kind,
                        reference: reference.clone(),
                        ledger: ledger.clone(),
                        file: file.clone(),
                    });
                }
            }
            None => {
                // Money out under a reference the ledger never recorded: if a statement
                // of that payee for exactly that amount is already paid, it was paid twice.
                let paid_before = statements.iter().find(|statement| {
                    statement.paid && statement.center == row.payee && statement.net == row.amount
                });
                let (kind, ledger) = match paid_before {
                    Some(statement) => (
                        DiscrepancyKind::StatementPaidTwice,
                        Some(LedgerSide {
                            amount: Some(statement.net),
                            statement: Some(statement.id),
                            payee: Some(statement.center),
                            ..LedgerSide::default()
                        }),
                    ),
                    None => (DiscrepancyKind::PaymentWithoutStatement, None),
                };
                lines.push(DiscrepancyLine {
                    kind,
                    reference,
                    ledger,
                    file,
                });
            }
        }
    }
    for statement in statements {
        for payment in &statement.payments {
            if !payment.returned && !first_line.contains_key(&payment.bank_reference) {
                lines.push(DiscrepancyLine {
                    kind: DiscrepancyKind::StatementNotPaid,
                    reference: payment.bank_reference.as_str().to_owned(),
                    ledger: Some(payment_side(statement, payment)),
                    file: None,
                });
            }
        }
    }
    sorted(lines)
}

/// Counts the lines of each kind (non-zero counts, in kind order).
pub fn count_lines(lines: &[DiscrepancyLine]) -> Vec<(DiscrepancyKind, u64)> {
    let mut counts: BTreeMap<DiscrepancyKind, u64> = BTreeMap::new();
    for line in lines {
        *counts.entry(line.kind).or_default() += 1;
    }
    counts.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(text: &str) -> Money {
        Money::parse("amount", text).expect("money")
    }

    fn date(text: &str) -> Date {
        Date::parse("date", text).expect("date")
    }

    fn number(text: &str) -> InvoiceNumber {
        InvoiceNumber::parse(text).expect("number")
    }

    fn row(line: u32, text: &str, amount: &str, subsidy: &str) -> InvoiceRow {
        InvoiceRow {
            line,
            invoice_number: number(text),
            issue_date: date("2026-03-05"),
            amount: money(amount),
            subsidy: money(subsidy),
        }
    }

    fn invoice(text: &str, amount: &str, subsidy: &str, reversed: bool) -> LedgerInvoice {
        LedgerInvoice {
            invoice_number: number(text),
            issue_date: date("2026-03-05"),
            amount: money(amount),
            subsidy: money(subsidy),
            reversed,
        }
    }

    #[test]
    fn every_invoice_kind_once_in_file_order_then_ledger_order() {
        // Given the ledger's invoices and a file that disagrees in every way,
        let ledger = [
            invoice("A", "100.00", "30.00", false),
            invoice("B", "100.00", "30.00", false),
            invoice("C", "100.00", "30.00", false),
            invoice("D", "100.00", "30.00", true),
            invoice("E", "100.00", "30.00", false),
            invoice("F", "100.00", "30.00", false),
            invoice("G", "100.00", "30.00", true),
        ];
        let rows = [
            row(2, "A", "100.00", "30.00"),
            row(3, "B", "101.00", "30.00"),
            row(4, "C", "100.00", "29.99"),
            row(5, "D", "100.00", "30.00"),
            row(6, "X", "1.00", "0.30"),
            row(7, "a", "100.00", "30.00"),
            row(8, "F", "99.00", "29.00"),
        ];
        // when they are matched,
        let lines = match_center_invoices(&rows, &ledger);
        // then each discrepancy is listed once, with its line, in a stable order.
        let got: Vec<(DiscrepancyKind, &str, Option<u32>)> = lines
            .iter()
            .map(|line| {
                (
                    line.kind,
                    line.reference.as_str(),
                    line.file.as_ref().and_then(|file| file.line),
                )
            })
            .collect();
        use DiscrepancyKind::*;
        assert_eq!(
            got,
            vec![
                (Matched, "A", Some(2)),
                (AmountMismatch, "B", Some(3)),
                (SubsidyMismatch, "C", Some(4)),
                (ReversedButClaimed, "D", Some(5)),
                (InFileNotInLedger, "X", Some(6)),
                (DuplicateInFile, "A", Some(7)),
                (AmountMismatch, "F", Some(8)),
                (SubsidyMismatch, "F", Some(8)),
                (InLedgerNotInFile, "E", None),
            ]
        );
        let subsidy = &lines[2];
        assert_eq!(
            subsidy.file.as_ref().and_then(|file| file.subsidy),
            Some(money("29.99"))
        );
        assert_eq!(
            subsidy.ledger.as_ref().and_then(|ledger| ledger.subsidy),
            Some(money("30.00"))
        );
        assert_eq!(
            lines[5].file.as_ref().and_then(|file| file.first_line),
            Some(2)
        );
        assert_eq!(
            match_center_invoices(&rows, &ledger),
            lines,
            "deterministic"
        );
    }

    fn uscc(text: &str) -> Uscc {
        Uscc::parse("uscc", text).expect("uscc")
    }

    fn reference(text: &str) -> BankReference {
        BankReference::parse(text).expect("reference")
    }

    fn paying(line: u32, text: &str, payee: &str, amount: &str) -> PaymentRow {
        PaymentRow {
            line,
            bank_reference: reference(text),
            payee: uscc(payee),
            payee_name: "中心".into(),
            amount: money(amount),
            value_date: date("2026-04-01"),
        }
    }

    #[test]
    fn every_payment_kind_once() {
        let c1 = "91330100MA2H00001P";
        let c2 = "91330100MA2H00002T";
        let payment = |text: &str, amount: &str, returned: bool| LedgerPayment {
            bank_reference: reference(text),
            amount: money(amount),
            value_date: date("2026-04-01"),
            returned,
        };
        let statements = [
            LedgerStatement {
                id: StatementId(10),
                center: uscc(c1),
                net: money("500.00"),
                paid: true,
                payments: vec![
                    payment("R-RET", "500.00", true),
                    payment("R-1", "500.00", false),
                ],
            },
            LedgerStatement {
                id: StatementId(11),
                center: uscc(c2),
                net: money("200.00"),
                paid: true,
                payments: vec![payment("R-2", "200.00", false)],
            },
            LedgerStatement {
                id: StatementId(12),
                center: uscc(c2),
                net: money("300.00"),
                paid: true,
                payments: vec![payment("R-3", "300.00", false)],
            },
            LedgerStatement {
                id: StatementId(13),
                center: uscc(c1),
                net: money("400.00"),
                paid: true,
                payments: vec![payment("R-4", "400.00", false)],
            },
            LedgerStatement {
                id: StatementId(14),
                center: uscc(c1),
                net: money("700.00"),
                paid: false,
                payments: vec![],
            },
        ];
        let rows = [
            paying(2, "R-1", c1, "500.00"),
            paying(3, "R-2", c2, "250.00"),
            paying(4, "R-3", c1, "300.00"),
            paying(5, "R-RET", c1, "500.00"),
            paying(6, "R-X", c1, "500.00"),
            paying(7, "R-Y", c1, "700.00"),
            paying(8, "R-1", c1, "500.00"),
        ];
        let lines = match_bank_payments(&rows, &statements);
        let got: Vec<(DiscrepancyKind, &str, Option<u32>)> = lines
            .iter()
            .map(|line| {
                (
                    line.kind,
                    line.reference.as_str(),
                    line.file.as_ref().and_then(|file| file.line),
                )
            })
            .collect();
        use DiscrepancyKind::*;
        assert_eq!(
            got,
            vec![
                (Matched, "R-1", Some(2)),
                (AmountMismatch, "R-2", Some(3)),
                (PayeeMismatch, "R-3", Some(4)),
                (ReturnedButPaid, "R-RET", Some(5)),
                (StatementPaidTwice, "R-X", Some(6)),
                (PaymentWithoutStatement, "R-Y", Some(7)),
                (DuplicateInFile, "R-1", Some(8)),
                (StatementNotPaid, "R-4", None),
            ]
        );
        assert_eq!(
            lines[4].ledger.as_ref().and_then(|ledger| ledger.statement),
            Some(StatementId(10))
        );
        assert_eq!(count_lines(&lines).len(), 8);
    }
}
