"""An interoperability scenario against a real `voucher-ledger serve`, written with stubs
that grpcio-tools generates from proto/ -- a client nobody on this project wrote.

usage: scenario.py STUBS_DIR ADDRESS
Exits 0 when every check passes; prints what failed otherwise.
"""
import sys
import uuid

sys.path.insert(0, sys.argv[1])
address = sys.argv[2]

import grpc  # noqa: E402
from voucher.v1 import ledger_pb2, ledger_pb2_grpc  # noqa: E402
from voucher.v1 import programme_pb2, programme_pb2_grpc  # noqa: E402
from voucher.v1 import redemption_pb2, redemption_pb2_grpc  # noqa: E402
from voucher.v1 import registry_pb2, registry_pb2_grpc  # noqa: E402
from voucher.v1 import types_pb2  # noqa: E402
from voucher.v1 import vouchers_pb2, vouchers_pb2_grpc  # noqa: E402

# The development tokens of config/server.toml (config/dev-tokens.txt).
BUREAU = [("authorization", "Bearer dev-bureau-token")]
AUDITOR = [("authorization", "Bearer dev-auditor-token")]
CENTER = [("authorization", "Bearer dev-center-1-token")]
ENTERPRISE = [("authorization", "Bearer dev-enterprise-1-token")]
CENTER_USCC = "91330100MA0000001F"
ENTERPRISE_USCC = "91330106MA00000016"


def check(condition, message):
    if not condition:
        print("FAILED:", message)
        sys.exit(1)


channel = grpc.insecure_channel(address)
grpc.channel_ready_future(channel).result(timeout=10)
programme = programme_pb2_grpc.ProgrammeServiceStub(channel)
registry = registry_pb2_grpc.RegistryServiceStub(channel)
vouchers = vouchers_pb2_grpc.VoucherServiceStub(channel)
redemption = redemption_pb2_grpc.RedemptionServiceStub(channel)
ledger = ledger_pb2_grpc.LedgerServiceStub(channel)

published = programme.PublishPolicy(
    programme_pb2.PublishPolicyRequest(policy=types_pb2.Policy(year=2026)), metadata=BUREAU)
check(published.policy.annual_pool == "250000000.00", f"default pool: {published.policy}")
check(published.sequence == 1, f"first event: {published.sequence}")

registry.RegisterCenter(registry_pb2.RegisterCenterRequest(
    uscc=CENTER_USCC, name="West Lake Intelligent Computing Center",
    tier=types_pb2.FACILITY_TIER_DOMESTIC,
    listing_basis=types_pb2.LISTING_BASIS_PLANNING_LAYOUT), metadata=BUREAU)
registry.RegisterEnterprise(registry_pb2.RegisterEnterpriseRequest(
    uscc=ENTERPRISE_USCC, name="Qiantang Vision AI Co., Ltd."), metadata=BUREAU)

voucher_id = str(uuid.uuid4())
approved = vouchers.ApproveVoucher(vouchers_pb2.ApproveVoucherRequest(
    voucher_id=voucher_id, year=2026, enterprise=ENTERPRISE_USCC, center=CENTER_USCC,
    contract_number="HZ-2026-PY-1", contract_fee="100000.03", term_start="2026-01-01",
    term_end="2026-12-31", requested="50000.00"), metadata=BUREAU)
check(approved.voucher.face_value == "30000.00", f"face value rounds down: {approved.voucher}")

batch = redemption.PostInvoices(redemption_pb2.PostInvoicesRequest(invoices=[
    redemption_pb2.Invoice(center=CENTER_USCC, voucher_id=voucher_id,
                           invoice_number=f"PY-{n}", amount="1000.07", issue_date="2026-05-01",
                           delivery_proof=f"acceptance/PY-{n}")
    for n in range(10)]), metadata=CENTER)
subsidies = [result.accepted.subsidy for result in batch.results]
check(subsidies == ["300.02"] * 10, f"subsidies: {subsidies}")

again = redemption.PostInvoice(redemption_pb2.Invoice(
    center=CENTER_USCC, voucher_id=voucher_id, invoice_number="PY-0", amount="1000.07",
    issue_date="2026-05-01", delivery_proof="acceptance/PY-0"), metadata=CENTER)
check(again.duplicate and again.subsidy == "300.02", f"idempotent repost: {again}")

try:
    redemption.PostInvoice(redemption_pb2.Invoice(
        center=CENTER_USCC, voucher_id=voucher_id, invoice_number="PY-late", amount="1.00",
        issue_date="2027-02-01", delivery_proof="x"), metadata=CENTER)
    check(False, "an invoice outside the term was accepted")
except grpc.RpcError as error:
    check(error.code() == grpc.StatusCode.FAILED_PRECONDITION, f"outside term: {error.code()}")
    check("INVOICE_DATE_OUTSIDE_TERM" in error.details(), f"details: {error.details()}")

try:
    redemption.PostInvoice(redemption_pb2.Invoice(
        center=CENTER_USCC, voucher_id=voucher_id, invoice_number="PY-bad", amount="1.001",
        issue_date="2026-05-01", delivery_proof="x"), metadata=CENTER)
    check(False, "three decimals accepted")
except grpc.RpcError as error:
    check(error.code() == grpc.StatusCode.INVALID_ARGUMENT, f"three decimals: {error.code()}")
    check("amount" in error.details(), f"names the field: {error.details()}")

try:
    programme.GetProgramme(programme_pb2.GetProgrammeRequest(year=2026))
    check(False, "no token accepted")
except grpc.RpcError as error:
    check(error.code() == grpc.StatusCode.UNAUTHENTICATED, f"no token: {error.code()}")

usage = ledger.GetEnterpriseUsage(ledger_pb2.GetEnterpriseUsageRequest(
    enterprise=ENTERPRISE_USCC, year=2026), metadata=ENTERPRISE)
check((usage.redeemed, usage.held, usage.free) == ("3000.20", "26999.80", "7970000.00"),
      f"usage: {usage}")

events = ledger.ReadEvents(ledger_pb2.ReadEventsRequest(from_sequence=1, limit=100),
                           metadata=AUDITOR)
kinds = [event.type for event in events.events]
check(kinds.count("InvoiceRedeemed") == 10, f"events: {kinds}")
check([event.sequence for event in events.events] == list(range(1, len(kinds) + 1)),
      "dense sequence numbers")
check(events.events[-1].invoice_redeemed.subsidy == "300.02", "typed event payload")

stream = ledger.SubscribeEvents(ledger_pb2.SubscribeEventsRequest(from_sequence=1),
                                metadata=AUDITOR)
streamed = []
for event in stream:
    streamed.append(event.sequence)
    if len(streamed) == len(kinds):
        stream.cancel()
        break
check(streamed == list(range(1, len(kinds) + 1)), f"subscription: {streamed}")

# The brief answer: only the repost is listed (by its position), the new ones are summed.
brief = redemption.PostInvoicesBrief(redemption_pb2.PostInvoicesRequest(invoices=[
    redemption_pb2.Invoice(center=CENTER_USCC, voucher_id=voucher_id,
                           invoice_number=number, amount="1000.07", issue_date="2026-05-01",
                           delivery_proof=f"acceptance/{number}")
    for number in ["PY-10", "PY-0", "PY-11"]]), metadata=CENTER)
check([item.index for item in brief.exceptions] == [1], f"exceptions: {brief.exceptions}")
check(brief.exceptions[0].result.accepted.duplicate, f"the repost: {brief.exceptions[0]}")
totals = brief.totals
check((totals.accepted, totals.duplicates, totals.rejected, totals.invalid) == (2, 1, 0, 0),
      f"counts: {totals}")
check((totals.subsidy, totals.enterprise_pays) == ("600.04", "1400.10"), f"sums: {totals}")

print(f"interop OK: {len(kinds)} events, subsidies {subsidies[0]} each")
