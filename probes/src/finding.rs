//! The finding model shared by every report: a rule id, a severity and a category, with a
//! location and the evidence that made the rule fire. Reports (JSON, SARIF, text) are views of it.

use serde::{Deserialize, Serialize};

/// Ordered from least to most severe, so `max()` over findings gives the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// SARIF `security-severity` as fixed by SPEC.
    pub fn security_severity(self) -> &'static str {
        match self {
            Severity::Critical => "9.5",
            Severity::High => "8.0",
            Severity::Medium => "5.0",
            Severity::Low => "2.0",
            Severity::Info => "0.1",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Static,
    Behaviour,
    Backdoor,
    Resource,
    Integrity,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: String,
    pub severity: Severity,
    pub category: Category,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

impl Finding {
    pub fn new(
        rule: &str,
        severity: Severity,
        category: Category,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            rule: rule.to_string(),
            severity,
            category,
            message: message.into(),
            location: None,
            evidence: None,
        }
    }

    pub fn at(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    pub fn with_evidence(mut self, evidence: impl Into<String>) -> Self {
        self.evidence = Some(evidence.into());
        self
    }
}

/// `fail` if any finding is high or critical, `warn` if medium, else `pass` (SPEC).
pub fn verdict(findings: &[Finding]) -> &'static str {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::High | Severity::Critical) => "fail",
        Some(Severity::Medium) => "warn",
        _ => "pass",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_follows_the_worst_finding() {
        let f = |s| Finding::new("x", s, Category::Static, "m");
        assert_eq!(verdict(&[]), "pass");
        assert_eq!(verdict(&[f(Severity::Low)]), "pass");
        assert_eq!(verdict(&[f(Severity::Low), f(Severity::Medium)]), "warn");
        assert_eq!(verdict(&[f(Severity::High)]), "fail");
        assert_eq!(verdict(&[f(Severity::Info), f(Severity::Critical)]), "fail");
    }
}
