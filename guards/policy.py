"""The policy matrix: every clause of D1, D2, D3 and 28 CFR 23.20, how fcmon answers it, and the test that proves it.

class: `enforced` (software refuses what the clause forbids), `supported` (software records what a person
decides, or a person's duty the software makes possible), `organisational` (conduct of people that no
software can enforce: device use, duty hours, posting on the department's own accounts).
A test (tests/test_policy.py) fails when an enforced clause names no test or a test that does not exist.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Class = Literal["enforced", "supported", "organisational"]
GC = "tests/test_guard_cases.py"
RR = "tests/test_record_review.py"
PK = "tests/test_packets.py"
RT = "tests/test_retention.py"
WS = "tests/test_web_supervision.py"


def cases(*names: str) -> tuple[str, ...]:
    return tuple(f"{GC}::test_{path}[{n}]" for n in names for path in ("guard_check", "worker"))


@dataclass(frozen=True)
class Clause:
    id: str
    text: str
    cls: Class
    mechanism: str
    tests: tuple[str, ...] = ()


ORG = "organisational"
SUP = "supported"
ENF = "enforced"
NOT_OPS = "fcmon never posts, messages or administers accounts; this governs people"

MATRIX: tuple[Clause, ...] = (
    # D1: Use of Social Media Outlets (2014)
    Clause("D1.IV.A.1", "Department outlets approved by the Superintendent, administered by PSIT", ORG, NOT_OPS),
    Clause("D1.IV.A.2", "Department computers access social media only with supervisory approval", ORG, "device policy"),
    Clause("D1.IV.A.3.a-c", "Records retention, Local Records Act and FOIA apply to content", SUP,
           "guards.labels: review_by/purge_by on every record; records retrievable by search; `fcmon retention` reviews and purges",
           ("tests/test_guards.py::test_indexed_decision_carries_labels_and_the_recorded_predicate",
            f"{RT}::test_the_run_purges_every_record_whose_date_has_come_and_audits_it_first")),
    Clause("D1.IV.B.1-5", "Administrators of department outlets: conduct, no guilt statements, no confidential posts, copyright, devices", ORG, NOT_OPS),
    Clause("D1.IV.B.6", "Ensure that all relevant privacy protections are maintained", ENF,
           "guards.pii.PiiMinimization masks other people's contact details before storage",
           cases("other-email-masked", "other-phone-masked", "address-masked", "author-email-kept", "predicate-named-phone-kept")),
    Clause("D1.V.A-C", "Members' personal use of social media", ORG, NOT_OPS),
    Clause("D1.VI.A.1-5", "Investigative uses: missing/wanted persons, gangs, online crimes, crime photos", SUP,
           "taskings state their purpose (kind, predicate, criminal activity), approved by a supervisor", cases("in-scope-post")),
    Clause("D1.VI.B.1", "Use only Department electronic equipment", ORG, "device policy"),
    Clause("D1.VI.B.2", "Investigate only while on duty", SUP,
           "every query audited with its time; `fcmon audit list` and the console's /review page highlight queries outside "
           "the user's duty hours for a supervisor to flag",
           ("tests/test_audit_review.py::test_review_marks_highlights_and_filters",
            "tests/test_web.py::test_a_supervisor_reviews_and_flags_queries_in_the_browser")),
    Clause("D1.VI.B.3", "Follow the Rules and Regulations and related directives", ORG, "department policy"),
    Clause("D1.VI.B.4", "Only use publicly available open source material", ENF,
           "guards.provenance.PublicProvenance; crawler public-only middlewares",
           cases("login-wall", "status-401", "redirect-to-login", "private-message-kind", "robots-disallowed")
           + ("tests/test_guard_corpus.py::test_walls_in_the_text_are_rejected_by_public_provenance_in_every_language",)),
    Clause("D1.VI.C.1", "No personal account or account information to access content", ENF,
           "guards.provenance.PublicProvenance rejects any Cookie, Authorization or session token sent",
           cases("cookie-sent", "authorization-sent", "session-id-sent") + ("tests/test_guard_properties.py::test_credentials_are_never_indexed",)),
    Clause("D1.VI.C.2", "No other individual's personal account", ENF, "as D1.VI.C.1: no credentials of any account are ever sent",
           cases("lowercase-cookie-sent", "proxy-authorization-sent", "auth-token-sent")),
    Clause("D1.VI.C.3", "No participation or contact with a suspect through alias accounts", ENF,
           "GET/HEAD only: no request that could post, message or befriend", cases("post-method", "put-method", "options-method")
           + ("tests/test_guard_properties.py::test_non_get_methods_are_never_indexed",)),
    Clause("D1.VI.C.4", "No alias account or identity", ENF, "no login of any kind: login walls and sign-up pages refused",
           cases("redirect-to-signup", "login-wall", "csrf-token-sent")),
    # D2: Social Media Outlet: Twitter (2016)
    Clause("D2.II-III", "The department's district Twitter presence", ORG, NOT_OPS),
    Clause("D2.IV.A-F", "Guidelines for district postings", ORG, NOT_OPS),
    Clause("D2.V.A-C", "Procedures of commanders, sergeants and News Affairs for postings", ORG, NOT_OPS),
    Clause("D2.V.D.2", "Record retention compliance of the program", SUP,
           "labels: review_by/purge_by never beyond five years; `fcmon retention run` purges on the date",
           ("tests/test_guards.py::test_noncriminal_taskings_get_the_shorter_retention",
            f"{RT}::test_the_run_purges_every_record_whose_date_has_come_and_audits_it_first")),
    Clause("D2.VI", "Conflict provision", ORG, "department policy"),
    # D3: DOC Special Order 15-01 (2015)
    Clause("D3.II", "Protect privacy, civil rights and civil liberties; social media is a forum for free speech", ENF,
           "guards.first_amendment.FirstAmendment; guards.tasking_rules denied protest/advocacy scope terms",
           cases("protest-no-conduct", "worship-no-conduct", "union-organizing", "advocacy-petition", "rally-plus-threat",
                 "denied-keyword-protest", "denied-hashtag")
           + ("tests/test_guard_rules.py::test_request_refuses_unlawful_taskings[hashtag]",)),
    Clause("D3.III", "Intelligence Gathering Assignment: not directed toward specific persons or illegal activity", ENF,
           "guards.tasking_rules: an IGA names no person or account; guards.subjects: IGA records keep no author or account",
           cases("iga-names-account", "iga-keyword-handle", "iga-topic-no-profile", "iga-feed-byline", "iga-profile-link",
                 "iga-person-with-age", "public-safety-person-profile")
           + ("tests/test_guard_rules.py::test_request_refuses_unlawful_taskings[iga-account]",)),
    Clause("D3.IV.A.1-9", "Members' personal SNS use, confidentiality, notification duties", ORG, NOT_OPS),
    Clause("D3.IV.A.10", "Gather, store and disseminate in conformity with the CPIC Privacy Policy; need-to-know", ENF,
           "every query audited before it runs and confined to its tasking's records (the Kibana gateway adds the tasking "
           "filter and refuses reads that would step around it); pipeline.packets: dissemination only as an approved packet "
           "with need and right to know stated, of reviewed records, recorded before it happens",
           (f"{PK}::test_an_approved_packet_is_disseminated_on_record_and_crawled_content_is_escaped",
            f"{PK}::test_requests_need_an_authorized_user_and_records_of_the_tasking",
            "tests/test_gateway_es.py::test_documents_of_other_taskings_are_not_found",
            "tests/test_gateway.py::test_an_msearch_with_one_unconfined_search_is_refused_whole",
            "tests/test_gateway.py::test_significant_terms_are_measured_against_the_taskings_own_documents")),
    Clause("D3.IV.A.11.a", "Not actively seek PII without a lawful purpose", ENF,
           "guards.purpose.LawfulPurpose (no tasking, no storage) and guards.pii.PiiMinimization",
           cases("no-tasking", "unapproved", "expired", "revoked", "host-outside-scope", "other-email-masked")),
    Clause("D3.IV.A.11.b", "Not post any information on social media sites", ENF, "GET/HEAD only", cases("post-method", "put-method")),
    Clause("D3.IV.A.11.c", "Not seek to connect with personal users", ENF, "GET/HEAD only, no credentials", cases("post-method", "cookie-sent")),
    Clause("D3.IV.A.11.d", "Not accept invitations to connect", ENF, "no login, no session: no account exists to accept with",
           cases("authorization-sent", "login-wall")),
    Clause("D3.IV.A.11.e", "Not interact on social media sites", ENF, "GET/HEAD only", cases("post-method", "options-method")
           + ("tests/test_guard_properties.py::test_non_get_methods_are_never_indexed",)),
    Clause("D3.IV.A.11.f", "No off-duty investigation without supervisor authorization", SUP,
           "queries audited with time and user; off-hours highlighted (duty_hours settings) in `fcmon audit list` and /review",
           ("tests/test_audit_review.py::test_review_marks_highlights_and_filters",
            "tests/test_web.py::test_a_supervisor_reviews_and_flags_queries_in_the_browser")),
    Clause("D3.IV.A.12.a-c", "Prohibited postings", ORG, NOT_OPS),
    Clause("D3.IV.B.1", "Objectives of review: threat, reasonable suspicion, reliable sources, fair and lawful collection", SUP,
           "taskings record kind, predicate and activity; labels record reliability and validity (unknown until an analyst's `fcmon record review`)",
           ("tests/test_guards.py::test_indexed_decision_carries_labels_and_the_recorded_predicate",)),
    Clause("D3.IV.B.2.a", "No undercover or covert operations without the Commander's approval", ENF,
           "fcmon cannot act covertly: no accounts, no credentials, no interaction", cases("cookie-sent", "post-method")),
    Clause("D3.IV.B.2.b", "Overt inquiries to decide whether a full investigation is warranted", SUP, "information-gathering and public-safety taskings",
           cases("public-safety-tasking")),
    Clause("D3.IV.B.2.c", "Assist investigations under a criminal predicate or public-safety issue", SUP, "criminal-predicate taskings, recorded on every record",
           cases("in-scope-post")),
    Clause("D3.IV.B.2.d", "Never a speculative search without grounds; 28 CFR Part 23 for intelligence on persons or groups", ENF,
           "guards.purpose (approved, unexpired, in scope), guards.relevance, guards.tasking_rules (predicate states facts)",
           cases("self-approved", "approved-by-detective", "approver-unknown", "in-domain-off-topic", "irrelevant-in-domain",
                 "predicate-without-facts", "account-mentioned-not-author")
           + (f"{WS}::test_a_supervisor_approves_a_tasking_in_the_browser_and_nobody_approves_their_own",
              f"{WS}::test_a_criminal_predicate_must_state_its_facts")),
    Clause("D3.IV.B.2.e", "Access Public Domain social networking sites", ENF, "robots.txt honoured; public source kinds only",
           cases("robots-disallowed", "private-message-kind")),
    Clause("D3.IV.B.2.f", "Monikers for login-only sites, with supervisor approval", ORG,
           "fcmon never logs in: such sites are out of its reach by design (refused, see D1.VI.C.4)"),
    Clause("D3.IV.B.2.g", "No personal information or logins for official business", ENF, "no credentials are ever sent",
           cases("cookie-sent", "authorization-sent")),
    Clause("D3.IV.B.3.a", "The Commander may review members' conduct and suspend access", SUP,
           "hash-chained audit log of every query and decision (`fcmon audit list|verify`)"),
    # 28 CFR 23.20
    Clause("28CFR23.20(a)", "Collect only on reasonable suspicion of criminal conduct, and only relevant information", ENF,
           "guards.purpose.LawfulPurpose and guards.relevance.Relevance (a keyword outside harmless uses and a second sign)",
           cases("no-tasking", "host-outside-scope", "irrelevant-in-domain", "relevant-by-activity", "relevant-by-conduct")
           + ("tests/test_guard_corpus.py::test_a_keyword_alone_is_not_relevance",
              "tests/test_guard_corpus.py::test_criminal_content_is_not_dropped")),
    Clause("28CFR23.20(b)", "No information about political, religious or social views, associations or activities unless directly related to crime", ENF,
           "guards.first_amendment.FirstAmendment, lexicons of seven languages (rejected, or quarantined for a supervisor with "
           "the signals); denied tasking terms whatever the spelling",
           cases("protest-no-conduct", "vigil", "rally-plus-threat", "crime-at-church-lot", "strike-with-threat", "denied-keyword-protest")
           + ("tests/test_guard_corpus.py::test_protected_activity_is_never_indexed_and_equally_so",
              "tests/test_guard_corpus.py::test_protected_and_criminal_together_go_to_the_quarantine")),
    Clause("28CFR23.20(c)", "Reasonable suspicion: sufficient facts, a definable criminal activity", ENF,
           "models.Tasking requires predicate, activity and case number; guards.tasking_rules refuses vague ones",
           cases("vague-criminal-activity", "predicate-without-facts") + ("tests/test_guard_rules.py::test_request_refuses_unlawful_taskings[vague-activity]",
                                                           "tests/test_guard_rules.py::test_request_refuses_unlawful_taskings[no-facts]")),
    Clause("28CFR23.20(d)", "No information obtained in violation of law", ENF,
           "guards.provenance.LawfullyObtained (consistent provenance) and PublicProvenance",
           cases("fetched-in-future", "hash-mismatch", "not-http-url") + ("tests/test_guard_cases.py::test_guard_check_rejects_malformed_lines_without_stopping",
                                                                        "tests/test_guard_corpus.py::test_a_malformed_item_is_rejected_under_its_own_id_and_an_oversize_one_unread")),
    Clause("28CFR23.20(e)", "Disseminate only with need to know and right to know", ENF,
           "pipeline.packets: no packet without stated need and right to know, approved by a supervisor other than the "
           "requester, rendered only while approved and the tasking active (the judgement itself is the supervisor's)",
           (f"{PK}::test_requests_need_an_authorized_user_and_records_of_the_tasking",
            f"{PK}::test_nobody_approves_their_own_packet_and_only_supervisors_approve",
            f"{PK}::test_only_an_approved_packet_is_rendered[requested]",
            f"{PK}::test_only_an_approved_packet_is_rendered[denied]",
            f"{PK}::test_a_tasking_that_expired_after_approval_disseminates_nothing")),
    Clause("28CFR23.20(f)", "Disseminate only to law enforcement agreeing to these principles (imminent danger excepted)", SUP,
           "recipient and agency on every packet and DisseminationEvent; the approving supervisor judges the recipient",
           (f"{PK}::test_an_approved_packet_is_disseminated_on_record_and_crawled_content_is_escaped",)),
    Clause("28CFR23.20(g)", "Safeguards and audit trails; labels of sensitivity, confidence, submitting agency and control official", ENF,
           "guards.labels on every record; audit log before every query (CLI, web console, API, Kibana gateway), record read, "
           "record review and dissemination "
           "(who received what, why, when: DisseminationEvent); quarantine decisions and readings of held items audited; "
           "the data directory private to its owner (pipeline.datadir), so no file is read around those gates",
           ("tests/test_guards.py::test_indexed_decision_carries_labels_and_the_recorded_predicate",
            "tests/test_cli.py::test_the_data_directory_is_private_to_its_owner",
            f"{PK}::test_an_approved_packet_is_disseminated_on_record_and_crawled_content_is_escaped",
            f"{PK}::test_no_log_no_packet",
            "tests/test_packets_pdf.py::test_the_cli_renders_a_pdf_a_recipient_can_check",
            "tests/test_packets_pdf.py::test_no_log_no_pdf",
            "tests/test_web.py::test_the_api_searches_with_basic_credentials_and_logs_first",
            "tests/test_web.py::test_no_log_no_query",
            "tests/test_audit_review.py::test_the_ledger_holds_every_search_term_from_every_interface",
            "tests/test_quarantine.py::test_keep_indexes_with_the_supervisor_and_is_audited",
            f"{WS}::test_a_supervisor_opens_a_held_item_and_purges_it_in_the_browser",
            f"{RR}::test_reading_a_record_is_authorized_and_audited_like_a_search") + cases("in-scope-post")),
    Clause("28CFR23.20(h)", "Periodic review; reviewer, date and reason recorded; never retained over five years", ENF,
           "guards.labels: review_by/purge_by within five years (settings capped); `fcmon record review` records reviewer, "
           "date and note, audited, and never extends retention; pipeline.retention: `fcmon retention review` lists records "
           "coming due and records a keep (reviewer, date, reason) or purge (also the web console's /retention), "
           "`fcmon retention run` purges every record on its purge date, audited before the index changes; `fcmon maintain` "
           "runs it daily with the quarantine's expiry (the compose `maintenance` service)",
           ("tests/test_guards.py::test_noncriminal_taskings_get_the_shorter_retention",
            "tests/test_guards.py::test_indexed_decision_carries_labels_and_the_recorded_predicate",
            f"{RR}::test_the_review_is_audited_with_labels_before_and_after",
            f"{RR}::test_retention_is_never_extended_beyond_five_years_of_collection",
            f"{RT}::test_the_run_purges_every_record_whose_date_has_come_and_audits_it_first",
            f"{RT}::test_keeping_records_the_validation_and_never_moves_the_purge_date",
            f"{WS}::test_a_supervisor_validates_and_purges_records_coming_due_in_the_browser",
            f"{RT}::test_no_log_no_purge",
            "tests/test_maintain.py::test_one_round_purges_expired_holds_and_due_records_and_audits_both",
            "tests/test_maintain.py::test_the_service_purges_on_schedule_and_stops_on_sigterm")),
    Clause("28CFR23.20(i)", "No direct remote terminal access without OJP approval; no major modifications without OJP approval", ORG,
           "deployment decision: fcmon serves authenticated users of the data directory only"),
    # Human review (Real-Time and Open Source Analysis guidance) and the 1998 clarification
    Clause("RTOS.review", "Automated collection is unreviewed; not criminal intelligence until an analyst reviews and submits it", ENF,
           "guards.labels: review_status unreviewed, criminal_intelligence false on every automated record (searchable, "
           "never disseminated: pipeline.packets refuses unreviewed records); "
           "`fcmon record review` (pipeline.records): an analyst or supervisor on the active tasking evaluates reliability "
           "and validity and submits the record (reviewed_by, the 28 CFR Part 23 submitter), audited before the index "
           "changes; criminal intelligence only under an active criminal predicate",
           cases("in-scope-post", "public-safety-tasking") + (
               f"{RR}::test_an_analyst_on_the_team_submits_criminal_intelligence_under_a_criminal_predicate",
               f"{RR}::test_information_gathering_is_reviewed_but_never_criminal_intelligence",
               f"{RR}::test_detectives_and_admins_may_not_review[dana]",
               f"{RR}::test_detectives_and_admins_may_not_review[ada]",
               f"{RR}::test_an_analyst_of_another_tasking_is_refused",
               f"{RR}::test_an_expired_tasking_is_refused",
               f"{RR}::test_no_log_no_review",
               f"{PK}::test_unreviewed_records_cannot_be_disseminated")),
    Clause("28CFR23.1998", "Identifying information about non-subjects is labelled and never counts toward a predicate", ENF,
           "guards.subjects.NonSubjects labels mentioned accounts; scope and relevance count the author only; "
           "an analyst's review never changes them",
           cases("bystander-labelled", "subject-mention-not-labelled", "account-mentioned-not-author")
           + (f"{RR}::test_an_analyst_on_the_team_submits_criminal_intelligence_under_a_criminal_predicate",)),
)


def as_rows() -> list[dict]:
    return [{"id": c.id, "text": c.text, "class": c.cls, "mechanism": c.mechanism, "tests": list(c.tests)} for c in MATRIX]


def markdown() -> str:
    lines = ["# Compliance matrix", "",
             "Generated by `fcmon compliance-report --format markdown` from `guards/policy.py`; do not edit by hand.", "",
             "*enforced*: software refuses what the clause forbids; *supported*: software records what a person decides "
             "or makes their duty possible; *organisational*: conduct of people, outside any software.", "",
             "| clause | requirement | class | mechanism | tests |", "|---|---|---|---|---|"]
    for c in MATRIX:
        tests = "<br>".join(f"`{t.split('::', 1)[1]}`" for t in c.tests) or "-"
        lines.append(f"| {c.id} | {c.text} | {c.cls} | {c.mechanism} | {tests} |")
    counts = {k: sum(c.cls == k for c in MATRIX) for k in (ENF, SUP, ORG)}
    lines += ["", f"{len(MATRIX)} clauses: {counts[ENF]} enforced, {counts[SUP]} supported, {counts[ORG]} organisational.", ""]
    return "\n".join(lines)
