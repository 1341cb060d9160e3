namespace erlangshen {}
