"""What differs between the modem families the emulator plays (see hardware.md), and its settings.

Each family is what its manuals and public AT logs show; none of it has been checked on a device
here (hardware.md marks each "emulator only").
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    manufacturer: str
    model: str
    revision: str
    unknown: str = "ERROR"  # the answer to a command it does not know
    boot_urcs: tuple[str, ...] = ()  # sent after power-up (plug)
    huawei_calls: bool = False  # ^ORIG/^CONF/^CONN/^CEND call progress
    huawei_ati: bool = False  # ATI answers "Manufacturer: … Model: …"
    periodic_urc: str = ""  # "^RSSI:{rssi}" every ModemConfig.periodic_interval
    ussd_encoding: str = "text"  # "gsm7-packed" (hex of packed septets), "ucs2" (hex), "text"
    unsupported: frozenset[str] = frozenset()  # command names answered with ``unknown``
    vendor: frozenset[str] = frozenset()  # vendor commands it accepts with OK (AT^CURC=0)
    caller_gone: str = "NO CARRIER"  # what an unanswered incoming call ends with
    first_slot: int = 1  # SIM storage index of the first message (Huawei counts from 0)
    call_created: str = ""  # sent with the first RING (Wavecom "+WIND: 5,1")
    call_answered: str = ""  # after ATA's OK (SIM7600 "VOICE CALL: BEGIN")
    call_released: str = ""  # after the call ended, either side (Wavecom "+WIND: 6,1")
    cpin_ready_urc: bool = False  # "+CPIN: READY" as a URC once the PIN is taken (SIMCom, Quectel)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("generic", "Generic", "GSM MODEM", "1.0"),
        Family(
            "huawei", "huawei", "E1550", "11.608.12.02.143", unknown="COMMAND NOT SUPPORT",
            boot_urcs=("^BOOT:20612263,0,0,0,72", "^SIMST:1", "^SRVST:2", "^MODE:5,4"),
            huawei_calls=True, huawei_ati=True, periodic_urc="^RSSI:{rssi}",
            ussd_encoding="gsm7-packed",
            vendor=frozenset({"AT^CURC", "AT^SYSCFG", "AT^USSDMODE", "AT^CVOICE", "AT^DDSETEX"}),
            caller_gone="^CEND:1,0,104,16", first_slot=0,
        ),
        Family(
            "e3372", "huawei", "E3372", "22.315.01.00.143", unknown="COMMAND NOT SUPPORT",
            boot_urcs=("^BOOT:20612263,0,0,0,72", "^SIMST:1", "^SRVST:2", "^MODE:5,4"),
            huawei_calls=True, huawei_ati=True, periodic_urc="^HCSQ:\"LTE\",{rssi},{rssi},60,1",
            ussd_encoding="gsm7-packed", vendor=frozenset({"AT^CURC", "AT^SYSCFGEX"}),
            caller_gone="^CEND:1,0,104,16", first_slot=0,
        ),
        Family(
            "simcom", "SIMCOM_Ltd", "SIMCOM_SIM800L", "Revision:1418B05SIM800L24",
            boot_urcs=("RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"),
            cpin_ready_urc=True,
        ),
        Family(
            "sim7600", "SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H", "LE20B04SIM7600M22",
            boot_urcs=("RDY", "+CPIN: READY", "SMS DONE", "PB DONE"), ussd_encoding="ucs2",
            call_answered="VOICE CALL: BEGIN", call_released="VOICE CALL: END: 000010",
            cpin_ready_urc=True,
        ),
        Family(
            "quectel", "Quectel", "EC25", "EC25EFAR06A06M4G",
            boot_urcs=("RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE",
                       "+QIND: PB DONE"),
            ussd_encoding="ucs2", vendor=frozenset({"AT+QURCCFG", "AT+QCFG"}),
            cpin_ready_urc=True,
        ),
        Family(
            "wavecom", "WAVECOM MODEM", "MULTIBAND  900E  1800", "641b09gg.Q2403A",
            boot_urcs=("+WIND: 13", "+WIND: 1", "+WIND: 16", "+WIND: 3", "+WIND: 4"),
            vendor=frozenset({"AT+WIND"}), call_created="+WIND: 5,1", call_released="+WIND: 6,1",
        ),
        Family(
            "cinterion", "Cinterion", "BGS2-W", "REVISION 01.301", boot_urcs=("^SYSSTART",),
            vendor=frozenset({"AT^SIND", "AT^SCFG"}),
        ),
        # A modem that answers COMMAND NOT SUPPORT to what it lacks (older Huawei firmware).
        Family(
            "nosupport", "huawei", "E173", "11.126.85.00.209", unknown="COMMAND NOT SUPPORT",
            unsupported=frozenset({"AT+CSCS", "AT+CGREG", "AT+CPMS", "AT+CSCA", "AT^CURC"}),
        ),
    )
}  # fmt: skip


@dataclass(slots=True)
class ModemConfig:
    family: str = "generic"
    imei: str = "867123456789012"
    imsi: str = "250011234567890"
    operator: str = "MTS RUS"
    own_number: str = "+79160000000"
    smsc: str = "+79168999100"
    rssi: int = 20  # +CSQ 0..31 (-113 + 2*rssi dBm)
    registered: bool = True
    pin: str | None = None  # the SIM asks for this PIN at power-up
    send_time: float = 5.0  # seconds from the PDU to +CMGS: <mr>
    report_delay: float = 2.0  # seconds from +CMGS to the +CDS status report
    report_status: int = 0x00  # TP-ST of the reports: 0 delivered, 0x40+ failed
    failed_destinations: frozenset[str] = frozenset()  # these get TP-ST 0x41 reports
    failed_seqs: frozenset[int] = frozenset()  # so do these parts of every long message
    cnma_timeout: float = 15.0  # AT+CSMS=1: seconds for the DTE's AT+CNMA
    ring_interval: float = 1.0
    ussd_delay: float = 0.5
    ussd_replies: dict[str, str] = field(
        default_factory=lambda: {"*100#": "Balance: 123.45 r.\nTariff: Smart"}
    )
    ussd_encoding: str | None = None  # overrides the family's
    periodic_interval: float | None = None  # ^RSSI every N s (Huawei); None: off
    sim_slots: int = 30
    # boot lines with the DTE's first bytes (the ESC a product sends on open), not with its
    # first command line: URCs that arrive while the product is still settling
    boot_on_input: bool = False
    time_scale: float = 1.0  # multiplies every delay above (0.001 for fast tests)

    @property
    def fam(self) -> Family:
        return FAMILIES[self.family]

    def delay(self, seconds: float) -> float:
        return seconds * self.time_scale
