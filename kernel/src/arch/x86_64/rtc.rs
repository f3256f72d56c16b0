//! The CMOS real-time clock, read once at boot for `CLOCK_REALTIME`.

use x86_64::instructions::port::Port;

fn read_register(reg: u8) -> u8 {
    let mut index = Port::<u8>::new(0x70);
    let mut data = Port::<u8>::new(0x71);
    // SAFETY: 0x70/0x71 are the CMOS index/data ports; reading a clock register has no
    // side effects (NMI-disable bit 7 left clear).
    unsafe {
        index.write(reg);
        data.read()
    }
}

fn update_in_progress() -> bool {
    read_register(0x0a) & 0x80 != 0
}

/// Seconds since 1970-01-01 00:00:00 UTC, per the RTC (which QEMU sets to UTC).
pub fn unix_time() -> u64 {
    while update_in_progress() {
        core::hint::spin_loop();
    }
    let status_b = read_register(0x0b);
    let bcd = status_b & 0x04 == 0;
    let decode = |v: u8| if bcd { (v & 0x0f) + (v >> 4) * 10 } else { v };
    let sec = decode(read_register(0x00)) as u64;
    let min = decode(read_register(0x02)) as u64;
    let hour_raw = read_register(0x04);
    let mut hour = decode(hour_raw & 0x7f) as u64;
    if status_b & 0x02 == 0 && hour_raw & 0x80 != 0 {
        hour = (hour % 12) + 12; // 12-hour mode, PM
    }
    let day = decode(read_register(0x07)) as u64;
    let month = decode(read_register(0x08)) as u64;
    let year = 2000 + decode(read_register(0x09)) as u64;
    days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    #[test_case]
    fn civil_day_numbers() {
        assert_eq!(super::days_from_civil(1970, 1, 1), 0);
        assert_eq!(super::days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(super::days_from_civil(2026, 11, 25), 20_782);
    }
}
