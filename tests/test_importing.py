"""The pure part of `callcenter import clients`: reading files, mapping columns, drafts."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.importing import (
    IGNORE,
    ClientDraft,
    ImportFileError,
    ImportPlan,
    MappingError,
    Table,
    build_drafts,
    default_target,
    parse_mapping,
    read_table,
    resolve_mapping,
)
from callcenter.models import ClientKind

MANAGERS = {"ivanov": 7, "иван иванов": 7, "petrov": 8}
CUSTOM = {"inn", "Source"}


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def plan_for(rows: list[list[str]], mapping: dict[str, str] | None = None,
             *, managers: dict[str, int] | None = None,
             custom: set[str] | None = None) -> ImportPlan:
    header, *body = rows
    table = Table(columns=header,
                  rows=[(n, dict(zip(header, cells, strict=True)))
                        for n, cells in enumerate(body, start=2)])
    return build_drafts(table, mapping or {}, region="RU",
                        known_managers=MANAGERS if managers is None else managers,
                        known_custom_fields=CUSTOM if custom is None else custom)


def only_draft(plan: ImportPlan) -> ClientDraft:
    assert plan.rejected == []
    assert len(plan.drafts) == 1
    return plan.drafts[0]


def only_draft_of(plan: ImportPlan) -> ClientDraft:
    """The single draft of a plan that also rejected rows."""
    assert len(plan.drafts) == 1
    return plan.drafts[0]


def reasons(plan: ImportPlan) -> dict[int, str]:
    return {r.row: r.reason for r in plan.rejected}


# --------------------------------------------------------------------------- CSV


def test_comma_csv_gives_columns_rows_and_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "Company,Phone\nAcme, +7 916 123-45-67 \nBeta,84951234567\n")
    table = read_table(path)
    assert table.columns == ["Company", "Phone"]
    assert table.rows == [
        (2, {"Company": "Acme", "Phone": "+7 916 123-45-67"}),
        (3, {"Company": "Beta", "Phone": "84951234567"}),
    ]


def test_cp1251_semicolon_file_is_detected(tmp_path: Path) -> None:
    text = "Компания;Телефон;Примечание\r\nООО «Ромашка»;8 916 123-45-67;Звонить утром, до 12\r\n"
    path = write(tmp_path, "ru.csv", text, encoding="cp1251")
    table = read_table(path)
    assert table.columns == ["Компания", "Телефон", "Примечание"]
    assert table.rows == [(2, {"Компания": "ООО «Ромашка»", "Телефон": "8 916 123-45-67",
                               "Примечание": "Звонить утром, до 12"})]


def test_tab_delimited_file_is_detected(tmp_path: Path) -> None:
    path = write(tmp_path, "t.tsv", "name\tphone\temail\nAcme, Inc\t+79161234567\ta@b.ru\n")
    table = read_table(path)
    assert table.columns == ["name", "phone", "email"]
    assert table.rows[0][1]["name"] == "Acme, Inc"


def test_pipe_delimited_file_is_detected(tmp_path: Path) -> None:
    path = write(tmp_path, "p.txt", "name|phone\nAcme|+79161234567\n")
    assert read_table(path).rows == [(2, {"name": "Acme", "phone": "+79161234567"})]


def test_sniffing_prefers_consistent_columns_over_more_columns(tmp_path: Path) -> None:
    text = "Name;Phone, fax;Notes, misc, other\nAcme;+79161234567;x\nBeta;+79161234568;y\n"
    table = read_table(write(tmp_path, "s.csv", text))
    assert table.columns == ["Name", "Phone, fax", "Notes, misc, other"]


def test_sniffing_is_not_fooled_by_commas_in_quoted_names(tmp_path: Path) -> None:
    text = 'Name;Phone;Notes\n"Acme, Inc";+79161234567;"a, b, c"\n"Beta, Ltd";+79161234568;x\n'
    table = read_table(write(tmp_path, "s.csv", text))
    assert table.columns == ["Name", "Phone", "Notes"]
    assert [cells["Name"] for _, cells in table.rows] == ["Acme, Inc", "Beta, Ltd"]


def test_utf8_bom_is_not_part_of_the_first_header(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffКлиент,Телефон\nАльфа,+79161234567\n".encode())
    table = read_table(path)
    assert table.columns == ["Клиент", "Телефон"]
    assert table.rows == [(2, {"Клиент": "Альфа", "Телефон": "+79161234567"})]


def test_explicit_utf8_still_strips_the_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfname,phone\nA,1\n")
    assert read_table(path, encoding="utf-8").columns == ["name", "phone"]


def test_quoted_newline_stays_in_the_cell_and_line_numbers_follow_the_file(
        tmp_path: Path) -> None:
    text = 'name,notes,phone\r\nAcme,"first line\r\nsecond line",+79161234567\r\nBeta,,+7916\r\n'
    table = read_table(write(tmp_path, "q.csv", text))
    assert table.rows == [
        (2, {"name": "Acme", "notes": "first line\nsecond line", "phone": "+79161234567"}),
        (4, {"name": "Beta", "notes": "", "phone": "+7916"}),
    ]


def test_explicit_encoding_wins_over_detection(tmp_path: Path) -> None:
    path = write(tmp_path, "koi.csv", "Клиент,Телефон\nЯблоко,+79161234567\n", encoding="koi8-r")
    assert read_table(path).columns != ["Клиент", "Телефон"]  # detection guesses cp1251
    assert read_table(path, encoding="koi8-r").columns == ["Клиент", "Телефон"]


def test_explicit_encoding_that_does_not_fit_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "ru.csv", "Клиент\nАльфа\n", encoding="cp1251")
    with pytest.raises(ImportFileError, match=r"ru\.csv.*not valid utf-8"):
        read_table(path, encoding="utf-8")
    with pytest.raises(ImportFileError, match="unknown encoding 'klingon'"):
        read_table(path, encoding="klingon")


@pytest.mark.parametrize("spelled", ["\t", "\\t", "tab", "TAB"])
def test_explicit_delimiter_accepts_tab_spellings(tmp_path: Path, spelled: str) -> None:
    path = write(tmp_path, "t.csv", "a,b\tc\n1,2\t3\n")
    assert read_table(path, delimiter=spelled).columns == ["a,b", "c"]


def test_explicit_delimiter_overrides_sniffing(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "a;b,c\n1;2,3\n")
    assert read_table(path, delimiter=",").columns == ["a;b", "c"]
    with pytest.raises(ImportFileError, match="single character"):
        read_table(path, delimiter=";;")


def test_blank_rows_are_skipped_and_ragged_rows_are_padded(tmp_path: Path) -> None:
    text = "\n\nname,phone,,phone\nAcme\n\n,,\nBeta,1,extra,2,surplus\n"
    table = read_table(write(tmp_path, "r.csv", text))
    assert table.columns == ["name", "phone", "Column 3", "phone (2)", "Column 5"]
    assert table.rows == [
        (4, {"name": "Acme", "phone": "", "Column 3": "", "phone (2)": "", "Column 5": ""}),
        (7, {"name": "Beta", "phone": "1", "Column 3": "extra", "phone (2)": "2",
             "Column 5": "surplus"}),
    ]


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    table = read_table(write(tmp_path, "h.csv", "name,phone\n"))
    assert table == Table(columns=["name", "phone"], rows=[], encoding="utf-8 (detected)")


@pytest.mark.parametrize("content", [b"", b"   \n\n", b"\xef\xbb\xbf", b",,,\n,,\n\t\n"])
def test_empty_csv_is_an_error_naming_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(ImportFileError, match=r"empty\.csv: the file is empty"):
        read_table(path)


def test_missing_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match=r"nope\.csv: cannot read"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(ImportFileError, match=r"nope\.xlsx: no such file"):
        read_table(tmp_path / "nope.xlsx")


def test_binary_file_named_csv_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "photo.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x98")
    with pytest.raises(ImportFileError, match=r"photo\.csv"):
        read_table(path)


@pytest.mark.parametrize(("name", "message"), [
    ("clients.json", r"clients\.json: unknown file type '\.json'"),
    ("clients", r"clients: unknown file type '\(no extension\)'"),
    ("old.xls", r"old\.xls: the old Excel \.xls format is not supported"),
])
def test_unsupported_file_types(tmp_path: Path, name: str, message: str) -> None:
    path = write(tmp_path, name, "name\nAcme\n")
    with pytest.raises(ImportFileError, match=message):
        read_table(path)


def test_options_for_the_other_format_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="--sheet applies to XLSX"):
        read_table(write(tmp_path, "a.csv", "name\nA\n"), sheet="Sheet1")
    with pytest.raises(ImportFileError, match="--delimiter and --encoding apply to CSV"):
        read_table(tmp_path / "a.xlsx", encoding="cp1251")


_CELL = st.text(alphabet=st.sampled_from(list("ab Яё,;|\t\"'\n1+-@")), max_size=8).map(str.strip)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1251"]),
    width=st.integers(min_value=1, max_value=4),
    data=st.data(),
)
def test_csv_round_trip(tmp_path: Path, delimiter: str, encoding: str, width: int,
                        data: st.DataObject) -> None:
    header = [f"col{i}" for i in range(width)]
    first = _CELL.filter(bool)  # a row whose cells are all blank is skipped by design
    rows = data.draw(st.lists(st.tuples(first, st.lists(_CELL, min_size=width - 1,
                                                         max_size=width - 1)), max_size=5))
    body = [[head, *tail] for head, tail in rows]
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    expected = []
    for record in [header, *body]:
        line = out.getvalue().count("\n") + 1
        writer.writerow(record)
        expected.append((line, dict(zip(header, record, strict=True))))
    path = tmp_path / "round.csv"
    path.write_bytes(out.getvalue().encode(encoding))
    given_encoding = None if encoding.startswith("utf-8") else encoding
    table = read_table(path, delimiter=delimiter, encoding=given_encoding)
    assert table.columns == header
    assert table.rows == expected[1:]


# --------------------------------------------------------------------------- XLSX


def make_xlsx(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        worksheet = workbook.create_sheet(title)
        for row in rows:
            worksheet.append(row)
    workbook.save(path)
    return path


def rewrite_sheet_xml(path: Path, replacements: dict[str, str]) -> None:
    """Edit the first sheet's XML to get what other writers produce and openpyxl does not."""
    with zipfile.ZipFile(path) as source:
        parts = {name: source.read(name) for name in source.namelist()}
    xml = parts["xl/worksheets/sheet1.xml"].decode()
    for old, new in replacements.items():
        if old not in xml:  # openpyxl writes "<x/>" instead of "<x />" when lxml is installed
            old = old.replace(" />", "/>")
        assert old in xml
        xml = xml.replace(old, new)
    parts["xl/worksheets/sheet1.xml"] = xml.encode()
    with zipfile.ZipFile(path, "w") as target:
        for name, content in parts.items():
            target.writestr(name, content)


def test_xlsx_floats_dates_and_row_numbers(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "c.xlsx", {"Clients": [
        [None, None],
        ["Company", "Phone", "Since", "Called", "Share", "Count", "VIP", "Big"],
        ["Acme", 79161234567, dt.date(2024, 3, 1), dt.datetime(2024, 3, 1, 9, 30),
         0.1 + 0.2, 12, True, 1234567890123456],
        [],
        ["Beta", 74951234567, None, None, None, None, False, None],
    ]})
    # openpyxl writes whole numbers as integers; Excel and converters store doubles.
    rewrite_sheet_xml(path, {"<v>79161234567</v>": "<v>79161234567.0</v>",
                             "<v>74951234567</v>": "<v>7.4951234567E10</v>",
                             "<v>1234567890123456</v>": "<v>1.234567890123456E15</v>"})
    table = read_table(path)
    assert table.columns == ["Company", "Phone", "Since", "Called", "Share", "Count", "VIP",
                             "Big"]
    assert table.rows == [
        (3, {"Company": "Acme", "Phone": "79161234567", "Since": "2024-03-01",
             "Called": "2024-03-01T09:30:00", "Share": "0.3", "Count": "12", "VIP": "TRUE",
             "Big": "1234567890123456"}),
        (5, {"Company": "Beta", "Phone": "74951234567", "Since": "", "Called": "",
             "Share": "", "Count": "", "VIP": "FALSE", "Big": ""}),
    ]


def test_xlsx_with_a_wrong_dimension_record_is_read_whole(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "d.xlsx", {"S": [["name", "phone"], ["Acme", "+79161234567"],
                                                 ["Beta", "+79161234568"]]})
    rewrite_sheet_xml(path, {'<dimension ref="A1:B3" />': '<dimension ref="A1" />'})
    table = read_table(path)
    assert table.columns == ["name", "phone"]
    assert [n for n, _ in table.rows] == [2, 3]


def test_xlsx_first_sheet_by_default_and_named_sheet_on_request(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "s.xlsx", {
        "First": [["name"], ["From first"]],
        "Другой": [["name", "phone"], ["From second", 79161234567.0]],
    })
    assert read_table(path).rows == [(2, {"name": "From first"})]
    assert read_table(path, sheet="Другой").rows == [
        (2, {"name": "From second", "phone": "79161234567"})]
    assert read_table(path, sheet="другой").columns == ["name", "phone"]
    with pytest.raises(ImportFileError, match=r"s\.xlsx: no sheet named 'Missing'; "
                                              r"sheets: First, Другой"):
        read_table(path, sheet="Missing")


def test_xlsx_that_is_not_a_workbook_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "fake.xlsx", "name,phone\nAcme,1\n")
    with pytest.raises(ImportFileError, match=r"fake\.xlsx: is not a readable \.xlsx"):
        read_table(path)


def test_empty_xlsx_is_an_error(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "empty.xlsx", {"Sheet": []})
    with pytest.raises(ImportFileError, match=r"empty\.xlsx: the file is empty"):
        read_table(path)


def test_xlsx_end_to_end_with_float_phones(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "e.xlsx", {"S": [
        ["Клиент", "Контакт", "Телефон"],
        ["Альфа", "Анна", 79161234567.0],
        ["Альфа", "Борис", 89161234568.0],
    ]})
    plan = build_drafts(read_table(path), {}, region="RU", known_managers={},
                        known_custom_fields=set())
    draft = only_draft(plan)
    assert [(c.name, [p.e164 for p in c.phones]) for c in draft.contacts] == [
        ("Анна", ["+79161234567"]), ("Борис", ["+79161234568"])]


# --------------------------------------------------------------------------- mapping


def test_parse_mapping() -> None:
    assert parse_mapping([
        "Company=name", "Телефон = phone", "ИНН=custom:inn", "Comment=-",
        "a=b=notes", "  Mobile  2 =PHONES", "Тип=Kind", "Extra=ignore",
    ]) == {
        "Company": "name", "Телефон": "phone", "ИНН": "custom:inn", "Comment": IGNORE,
        "a=b": "notes", "Mobile 2": "phone", "Тип": "kind", "Extra": IGNORE,
    }
    assert parse_mapping([]) == {}
    assert parse_mapping(["X=name", "X=name"]) == {"X": "name"}


@pytest.mark.parametrize(("spec", "message"), [
    ("Company", "expected COLUMN=TARGET"),
    ("=name", "expected COLUMN=TARGET"),
    ("Company=nmae", "unknown target 'nmae'; expected one of name, kind"),
    ("ИНН=custom:", "custom field name is missing"),
])
def test_parse_mapping_errors(spec: str, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        parse_mapping([spec])


def test_parse_mapping_refuses_one_column_with_two_targets() -> None:
    with pytest.raises(MappingError, match="'X' is mapped twice: to name and notes"):
        parse_mapping(["X=name", "X=notes"])


@pytest.mark.parametrize(("header", "target"), [
    ("Name", "name"), ("COMPANY", "name"), ("Клиент", "name"), ("компания", "name"),
    ("Название", "name"), ("Client name", "name"),
    ("Kind", "kind"), ("type", "kind"), ("Тип", "kind"),
    ("Contact", "contact"), ("Contact Name", "contact"), ("ФИО", "contact"),
    ("Контактное лицо", "contact"), ("контакт", "contact"),
    ("Position", "position"), ("Должность", "position"),
    ("Email", "email"), ("E-mail", "email"), ("e_mail", "email"), ("Почта", "email"),
    ("Phone", "phone"), ("Phones", "phone"), ("Telephone", "phone"), ("Телефон", "phone"),
    ("Телефоны", "phone"), ("Mobile", "phone"), ("Мобильный", "phone"),
    ("Телефон 2", "phone"), ("Phone (3)", "phone"), ("phone2", "phone"), ("Тел.", "phone"),
    ("Manager", "manager"), ("Менеджер", "manager"), ("Ответственный", "manager"),
    ("Notes", "notes"), ("Comment", "notes"), ("Примечание", "notes"),
    ("Комментарий", "notes"),
    ("custom:inn", "custom:inn"), ("Custom: Source", "custom:Source"),
    ("ИНН", None), ("Column 3", None), ("Phone number of boss", None), ("2", None),
])
def test_default_targets(header: str, target: str | None) -> None:
    assert default_target(header) == target


def test_resolve_mapping_explicit_wins_and_defaults_fill_in() -> None:
    columns = ["Компания", "ИНН", "Телефон", "Телефон (2)", "Comment", "Misc"]
    resolved = resolve_mapping(columns, {"инн": "custom:inn", "Comment": IGNORE})
    assert resolved == {"Компания": "name", "ИНН": "custom:inn", "Телефон": "phone",
                        "Телефон (2)": "phone", "Comment": IGNORE, "Misc": IGNORE}


def test_resolve_mapping_can_repoint_a_default_column() -> None:
    resolved = resolve_mapping(["ФИО", "Телефон"], {"ФИО": "name"})
    assert resolved == {"ФИО": "name", "Телефон": "phone"}


def test_resolve_mapping_matches_explicit_columns_loosely() -> None:
    resolved = resolve_mapping(["Company", "Notes"], {"notes": "-", "NOTES ": "-"})
    assert resolved == {"Company": "name", "Notes": IGNORE}


@pytest.mark.parametrize(("columns", "mapping", "message"), [
    (["Company"], {"Compnay": "name"}, "column 'Compnay', which is not in the file"),
    (["Misc", "Phone"], {}, "no column holds the client name"),
    (["Company", "Client"], {}, "columns 'Company' and 'Client' all map to name; keep one, "
                                "e.g. --map \"Client=-\""),
    (["Company", "Email", "E-mail 2"], {}, "'Email' and 'E-mail 2' all map to email"),
    (["Company", "A"], {"A": "name"}, "all map to name"),
    (["a b", "a_b"], {"A B ": "name"}, "ambiguous"),
])
def test_resolve_mapping_errors(columns: list[str], mapping: dict[str, str],
                                message: str) -> None:
    with pytest.raises(MappingError, match=message.replace("(", r"\(")):
        resolve_mapping(columns, mapping)


def test_build_drafts_raises_for_a_broken_mapping() -> None:
    with pytest.raises(MappingError, match="no column holds the client name"):
        plan_for([["Phone"], ["+79161234567"]])


# --------------------------------------------------------------------------- drafts


def test_rows_of_one_client_merge_into_contacts() -> None:
    plan = plan_for([
        ["Company", "Contact", "Position", "Email", "Phone", "Manager", "Notes"],
        ["Acme", "Ann", "CEO", "ann@acme.ru", "+7 916 123-45-67, 8 (495) 123-45-67",
         "ivanov", "Key account"],
        ["  ACME ", "Bob", "", "bob@acme.ru", "89161234568", "", "Key account"],
        ["acme", "Ann", "", "", "+79161234569\n+79161234567", "Иван Иванов", "Pays late"],
        ["Beta", "", "", "", "", "", ""],
    ])
    assert plan.rejected == []
    acme, beta = plan.drafts
    assert (acme.name, acme.kind, acme.manager_id) == ("Acme", ClientKind.COMPANY, 7)
    assert acme.source_rows == [2, 3, 4]
    assert acme.notes == "Key account\nPays late"
    ann, bob = acme.contacts
    assert (ann.name, ann.position, ann.email, ann.source_row) == ("Ann", "CEO", "ann@acme.ru", 2)
    assert [p.e164 for p in ann.phones] == ["+79161234567", "+74951234567", "+79161234569"]
    assert [p.raw for p in ann.phones][:2] == ["+7 916 123-45-67", "8 (495) 123-45-67"]
    assert ann.phones[0].digits == "79161234567"
    assert (bob.name, bob.email, bob.source_row) == ("Bob", "bob@acme.ru", 3)
    assert [p.e164 for p in bob.phones] == ["+79161234568"]
    assert (beta.name, beta.contacts, beta.source_rows) == ("Beta", [], [5])
    assert plan.ignored_columns == []
    assert plan.mapping["Company"] == "name"


def test_namesakes_with_different_emails_stay_separate_contacts() -> None:
    plan = plan_for([
        ["name", "contact", "email", "position"],
        ["Acme", "Ann", "ann@acme.ru", ""],
        ["Acme", "Ann", "ann2@acme.ru", ""],
        ["Acme", "Ann", "", "CTO"],
    ])
    contacts = only_draft(plan).contacts
    assert [(c.email, c.position, c.source_row) for c in contacts] == [
        ("ann@acme.ru", "CTO", 2), ("ann2@acme.ru", "", 3)]


def test_several_phone_columns_and_separators() -> None:
    plan = plan_for([
        ["Client", "Телефон", "Мобильный", "Phone 2"],
        ["Acme", "+79161234567; +79161234568", "8 916 123 45 69", "+79161234567"],
    ])
    phones = only_draft(plan).contacts[0].phones
    assert [p.e164 for p in phones] == ["+79161234567", "+79161234568", "+79161234569"]


def test_phone_with_extension_keeps_raw_text_and_matches_the_main_number() -> None:
    plan = plan_for([["name", "phone"], ["Acme", "+7 495 123-45-67 доб. 123"],
                     ["Beta", "8 (812) 1234567 ext 5"]])
    assert plan.rejected == []
    acme_phone = plan.drafts[0].contacts[0].phones[0]
    assert (acme_phone.raw, acme_phone.e164) == ("+7 495 123-45-67 доб. 123", "+74951234567")
    assert plan.drafts[1].contacts[0].phones[0].e164 == "+78121234567"


def test_foreign_and_unparseable_but_long_numbers_are_kept() -> None:
    plan = plan_for([["name", "phone"], ["Acme", "+49 30 1234567"], ["Beta", "1234567"],
                     ["Gamma", "7654321 доб. 12"]])
    assert [(d.contacts[0].phones[0].e164, d.contacts[0].phones[0].digits)
            for d in plan.drafts] == [("+49301234567", "49301234567"), (None, "1234567"),
                                      (None, "7654321")]


@pytest.mark.parametrize(("text", "kind"), [
    ("company", ClientKind.COMPANY), ("Компания", ClientKind.COMPANY),
    ("юр. лицо", ClientKind.COMPANY), ("ИП", ClientKind.COMPANY),
    ("person", ClientKind.PERSON), ("Физлицо", ClientKind.PERSON),
    ("физ. лицо", ClientKind.PERSON), ("Private", ClientKind.PERSON),
    ("", ClientKind.COMPANY),
])
def test_kind_words(text: str, kind: ClientKind) -> None:
    assert only_draft(plan_for([["name", "kind"], ["Acme", text]])).kind is kind


def test_person_contacts_without_a_name_take_the_client_name() -> None:
    plan = plan_for([
        ["name", "kind", "phone", "contact"],
        ["Петров Пётр", "", "+79161234567", ""],
        ["петров пётр", "физлицо", "", ""],
        ["Петров Пётр", "", "+79161234568", "Жена"],
        ["Acme", "company", "+79161234569", ""],
    ])
    person, company = plan.drafts
    assert person.kind is ClientKind.PERSON
    assert [(c.name, len(c.phones)) for c in person.contacts] == [("Петров Пётр", 1),
                                                                 ("Жена", 1)]
    assert company.contacts[0].name == ""


def test_custom_fields_and_ignored_columns() -> None:
    plan = plan_for([
        ["Компания", "ИНН", "Источник", "Мусор"],
        ["Альфа", "7701234567", "выставка", "x"],
        ["Альфа", "", "", "y"],
    ], {"ИНН": "custom:INN", "Источник": "custom:source"})
    draft = only_draft(plan)
    assert draft.custom == {"inn": "7701234567", "Source": "выставка"}
    assert draft.contacts == []
    assert plan.ignored_columns == ["Мусор"]


def test_client_values_may_be_filled_in_by_a_later_row() -> None:
    plan = plan_for([
        ["name", "kind", "manager", "ИНН"],
        ["Acme", "", "", ""],
        ["Acme", "person", "PETROV", "123"],
    ], {"ИНН": "custom:inn"})
    draft = only_draft(plan)
    assert (draft.kind, draft.manager_id, draft.custom) == (ClientKind.PERSON, 8, {"inn": "123"})


@pytest.mark.parametrize(("column", "value", "reason"), [
    ("name", "", "missing client name (column 'name' is empty)"),
    ("kind", "partner", "kind 'partner' is neither company nor person"),
    ("phone", "+12", "phone '+12' is too short to match a caller (needs at least 7 digits)"),
    ("phone", "12", "phone '12' is too short to match a caller: numbers of fewer than 7 "
                    "digits are internal extensions"),
    ("phone", "101", "phone '101' is too short to match a caller: numbers of fewer than 7 "
                     "digits are internal extensions"),
    ("phone", "anonymous", "phone 'anonymous' is not a number"),
    ("phone", "n/a", "phone 'n/a' has no digits"),
    ("email", "ann.acme.ru", "email 'ann.acme.ru' has no @"),
    ("email", "a@b.ru, c@d.ru", "email 'a@b.ru, c@d.ru' is not a single valid address"),
    ("manager", "sidorov", "unknown manager 'sidorov' (not a user login or name)"),
    ("ИНН", "7701", "unknown custom field 'kpp' (column 'ИНН'); create the field first or "
                    "fix --map"),
])
def test_each_rejection_reason(column: str, value: str, reason: str) -> None:
    header = ["name", "kind", "phone", "email", "manager", "ИНН"]
    good = {"name": "Good", "kind": "", "phone": "+79161230000", "email": "", "manager": "",
            "ИНН": ""}
    # A valid phone keeps the bad row from being blank, which would be skipped, not rejected.
    bad = {**dict.fromkeys(header, ""), "name": "Bad", "phone": "+79161239999", column: value}
    plan = plan_for([header, [good[h] for h in header], [bad[h] for h in header]],
                    {"ИНН": "custom:kpp"})
    assert [d.name for d in plan.drafts] == ["Good"]
    assert [(r.row, r.reason) for r in plan.rejected] == [(3, reason)]
    assert plan.rejected[0].values == bad


def test_every_problem_of_a_row_is_reported_at_once() -> None:
    plan = plan_for([["name", "phone", "email"], ["", "12, 123", "nope"]])
    assert plan.drafts == []
    assert reasons(plan) == {2: "missing client name (column 'name' is empty); "
                                "phone '12' is too short to match a caller: numbers of fewer "
                                "than 7 digits are internal extensions; "
                                "phone '123' is too short to match a caller: numbers of fewer "
                                "than 7 digits are internal extensions; "
                                "email 'nope' has no @"}


def test_phone_of_another_client_rejects_the_later_row() -> None:
    plan = plan_for([
        ["name", "contact", "phone"],
        ["Acme", "Ann", "+7 916 123-45-67"],
        ["Beta", "Bob", "8 916 123 45 67"],
        ["Acme", "Carl", "+79161234567"],
        ["Gamma", "", "+79161234568"],
        ["Delta", "", "+79161234567"],
    ])
    assert reasons(plan) == {
        3: "phone '8 916 123 45 67' already belongs to client 'Acme' (row 2)",
        6: "phone '+79161234567' already belongs to client 'Acme' (row 2)",
    }
    assert [d.name for d in plan.drafts] == ["Acme", "Gamma"]
    assert [c.name for c in plan.drafts[0].contacts] == ["Ann", "Carl"]


def test_a_rejected_row_leaves_no_trace() -> None:
    plan = plan_for([
        ["name", "phone", "email"],
        ["Acme", "+79161234567", "bad"],
        ["Beta", "+79161234567", ""],
        ["Acme", "+79161234568", ""],
    ])
    assert reasons(plan) == {2: "email 'bad' has no @"}
    assert [(d.name, d.source_rows) for d in plan.drafts] == [("Beta", [3]), ("Acme", [4])]


def test_conflicting_client_values_reject_the_later_row() -> None:
    plan = plan_for([
        ["name", "kind", "manager", "ИНН", "contact"],
        ["Acme", "company", "ivanov", "1", "Ann"],
        ["Acme", "person", "", "", "Bob"],
        ["Acme", "", "petrov", "", "Carl"],
        ["Acme", "", "Иван Иванов", "2", "Dan"],
        ["Acme", "Компания", "IVANOV", "1", "Eve"],
    ], {"ИНН": "custom:inn"})
    assert reasons(plan) == {
        3: "kind person conflicts with company given for 'Acme' on row 2",
        4: "manager 'petrov' conflicts with 'ivanov' given for 'Acme' on row 2",
        5: "inn '2' conflicts with '1' given for 'Acme' on row 2",
    }
    assert [c.name for c in only_draft_of(plan).contacts] == ["Ann", "Eve"]


def test_mixed_csv_end_to_end(tmp_path: Path) -> None:
    text = (
        "Компания;ФИО;Должность;E-mail;Телефоны;Ответственный;ИНН;Комментарий;Сайт\r\n"
        "ООО «Ромашка»;Анна Смирнова;Директор;anna@romashka.ru;"
        "\"+7 916 123-45-67\r\n8 495 123-45-67\";ivanov;7701234567;VIP;romashka.ru\r\n"
        "ооо «ромашка»;Борис;Бухгалтер;boris@romashka.ru;89161234568;;;;\r\n"
        ";Никто;;;+79161234569;;;;\r\n"
        "ИП Сидоров;;;sidorov(at)mail.ru;101;sidorov;;;\r\n"
        "Лютик;Вера;;;8 916 123-45-67;;;;\r\n"
        "\r\n"
        "Лютик;Гена;;;+79161234570;petrov;;;\r\n"
    )
    path = write(tmp_path, "mixed.csv", text, encoding="cp1251")
    plan = build_drafts(read_table(path), parse_mapping(["ИНН=custom:inn"]), region="RU",
                        known_managers=MANAGERS, known_custom_fields={"inn"})
    assert plan.ignored_columns == ["Сайт"]
    assert [(d.name, d.source_rows) for d in plan.drafts] == [("ООО «Ромашка»", [2, 4]),
                                                              ("Лютик", [9])]
    romashka = plan.drafts[0]
    assert (romashka.manager_id, romashka.custom, romashka.notes) == (
        7, {"inn": "7701234567"}, "VIP")
    assert [(c.name, c.position, [p.e164 for p in c.phones]) for c in romashka.contacts] == [
        ("Анна Смирнова", "Директор", ["+79161234567", "+74951234567"]),
        ("Борис", "Бухгалтер", ["+79161234568"]),
    ]
    assert reasons(plan) == {
        5: "missing client name (column 'Компания' is empty)",
        6: "email 'sidorov(at)mail.ru' has no @; phone '101' is too short to match a caller: "
           "numbers of fewer than 7 digits are internal extensions; "
           "unknown manager 'sidorov' (not a user login or name)",
        7: "phone '8 916 123-45-67' already belongs to client 'ООО «Ромашка»' (row 2)",
    }
    assert plan.rejected[0].values["ФИО"] == "Никто"


@pytest.mark.parametrize("cell", [
    "+7 916 123-45-67 / 8 495 123-45-67",
    "+7 916 123-45-67/8 (495) 123-45-67",
    "+7 916 123-45-67; 8 495 123-45-67",
    "+7 916 123-45-67, 8 495 123-45-67",
])
def test_a_cell_with_two_numbers_gives_two_phones(cell: str) -> None:
    plan = plan_for([["name", "phone"], ["Acme", cell]])
    assert plan.rejected == []
    [contact] = plan.drafts[0].contacts
    assert [p.e164 for p in contact.phones] == ["+79161234567", "+74951234567"]


def test_one_stray_byte_does_not_switch_a_utf8_file_to_cp1251(tmp_path: Path) -> None:
    text = "Компания;Телефон\n" + "".join(
        f"Ромашка {i};+7916123{i:04d}\n" for i in range(40))
    data = text.encode("utf-8")
    at = data.index("Ромашка 20".encode())
    path = tmp_path / "stray.csv"
    path.write_bytes(data[:at] + b"\xff" + data[at:])
    # Read as cp1251 every name would be garbled ("РОМАШКА" as "Р РѕРјР°С€РєР°"): refuse,
    # and say where the bad byte is.
    with pytest.raises(ImportFileError, match=r"UTF-8 text except for 1 invalid byte.*line 22"):
        read_table(path)
    assert read_table(path, encoding="cp1251").encoding == "cp1251 (given)"


@pytest.mark.parametrize(("encoding", "reported"), [
    ("utf-8", "utf-8 (detected)"), ("utf-8-sig", "utf-8 (detected)"),
    ("cp1251", "cp1251 (detected)"), ("koi8-r", "koi8-r (detected)"),
])
def test_the_encoding_is_detected_and_reported(tmp_path: Path, encoding: str,
                                               reported: str) -> None:
    text = "Компания;Контакт;Телефон\n" + "".join(
        f"ООО Ромашка {i};Иван Петров;+7916123{i:04d}\n" for i in range(30))
    table = read_table(write(tmp_path, "c.csv", text, encoding))
    assert table.encoding == reported
    assert table.rows[0][1]["Компания"] == "ООО Ромашка 0"


@pytest.mark.parametrize("encoding", [None, "utf-8", "cp1251"])
def test_nul_bytes_are_refused_with_a_clear_error(tmp_path: Path, encoding: str | None
                                                  ) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(b"name,phone\nAcme,+7916\x001234567\n")
    with pytest.raises(ImportFileError, match=r"NUL byte \(line 2"):
        read_table(path, encoding=encoding)


def test_utf16_with_its_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "u16.csv"
    path.write_bytes("name\tphone\nЯблоко\t+79161234567\n".encode("utf-16"))
    table = read_table(path)
    assert table.rows == [(2, {"name": "Яблоко", "phone": "+79161234567"})]
    assert table.encoding.startswith("utf_16") or table.encoding.startswith("utf-16")


@pytest.mark.parametrize("cell", [
    "+7 916 123-45-67 или 8 495 123-45-67",
    "+7 916 123-45-67 or 8 495 123-45-67",
    "+7 916 123-45-67 \\ 8 495 123-45-67",
    "+7 916 123-45-67 (моб.), 8 495 123-45-67 (раб.)",
])
def test_numbers_between_words_and_labels_are_found(cell: str) -> None:
    plan = plan_for([["name", "phone"], ["Acme", cell]])
    assert plan.rejected == []
    [contact] = plan.drafts[0].contacts
    assert [p.e164 for p in contact.phones] == ["+79161234567", "+74951234567"]


def test_an_extension_after_a_comma_belongs_to_the_number() -> None:
    plan = plan_for([["name", "phone"], ["Acme", "8 495 123-45-67, доб. 123"]])
    assert plan.rejected == []
    [phone] = plan.drafts[0].contacts[0].phones
    assert (phone.raw, phone.e164) == ("8 495 123-45-67, доб. 123", "+74951234567")


def test_two_numbers_glued_by_a_space_are_rejected_with_a_reason() -> None:
    plan = plan_for([["name", "phone"], ["Acme", "+7 916 123-45-67 8 495 123-45-67"]])
    assert plan.drafts == []
    assert "22 digits in a row" in plan.rejected[0].reason
    assert "separate them" in plan.rejected[0].reason
