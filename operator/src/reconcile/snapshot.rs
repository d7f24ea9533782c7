//! One read of the Organization per pass, shared by every OU and account reconcile.
//!
//! The tree is walked from the root (ListOrganizationalUnitsForParent and ListAccountsForParent per
//! parent, ListCreateAccountStatus once), so the cost grows with pages of results and the number of
//! OUs, never with a ListParents or DescribeAccount per account: 2 × (OUs + 1) calls, one more per
//! further page of 20 accounts, and DescribeOrganization, ListRoots, ListCreateAccountStatus. Every
//! account sits under the root or an OU, so the walk sees them all without ListAccounts.

use crate::aws::AwsResult;
use crate::aws::organizations::{
    AccountInfo, CreateAccountStatus, OrgInfo, Organizations, OuInfo, RootInfo, SnapshotChange,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Default)]
pub struct OrgSnapshot {
    pub org: Option<OrgInfo>,
    pub root_id: String,
    /// The root with its enabled policy types.
    pub root: RootInfo,
    pub ous: BTreeMap<String, OuInfo>,
    pub accounts: BTreeMap<String, AccountInfo>,
    /// CreateAccount requests still IN_PROGRESS.
    pub in_flight: Vec<CreateAccountStatus>,
}

impl OrgSnapshot {
    pub async fn load(orgs: &dyn Organizations) -> AwsResult<Self> {
        let org = orgs.describe_organization().await?;
        let root = orgs
            .list_roots()
            .await?
            .into_iter()
            .next()
            .unwrap_or_default();
        let root_id = root.id.clone();
        let mut snap = OrgSnapshot {
            org: Some(org),
            root_id: root_id.clone(),
            root,
            ..Default::default()
        };
        // Breadth-first walk: parentage of every OU and account without a call per account.
        let mut parents = vec![root_id];
        while let Some(parent) = parents.pop() {
            for ou in orgs.list_ous_for_parent(&parent).await? {
                parents.push(ou.id.clone());
                snap.ous.insert(ou.id.clone(), ou);
            }
            for a in orgs.list_accounts_for_parent(&parent).await? {
                snap.accounts.insert(a.id.clone(), a);
            }
        }
        snap.in_flight = orgs
            .list_create_requests(crate::aws::organizations::CreateState::InProgress)
            .await?;
        Ok(snap)
    }

    /// Reads again what changed (accounts moved, OUs renamed or created, the accounts of some
    /// parents, the root's policy types) instead of the whole tree: ListRoots for the root, one
    /// ListParents per moved account, one
    /// ListOrganizationalUnitsForParent per parent of a renamed or created OU, one
    /// ListAccountsForParent (and its pages) per parent named.
    pub async fn patch(
        &mut self,
        change: &SnapshotChange,
        orgs: &dyn Organizations,
    ) -> AwsResult<()> {
        if change.root
            && let Some(root) = orgs.list_roots().await?.into_iter().next()
        {
            self.root = root;
        }
        let mut parents_to_list = change.accounts_under.clone();
        for account in &change.moved_accounts {
            let parent = orgs.parent_of(account).await?;
            match self.accounts.get_mut(account) {
                Some(a) => a.parent_id = parent,
                // New since the read (created and moved at once): listed with its parent's.
                None => parents_to_list.extend(parent),
            }
        }
        let parents: BTreeSet<String> = change
            .renamed_ous
            .iter()
            .filter_map(|ou| self.ous.get(ou).map(|o| o.parent_id.clone()))
            .chain(change.ous_under.iter().cloned())
            .collect();
        for parent in parents {
            for ou in orgs.list_ous_for_parent(&parent).await? {
                self.ous.insert(ou.id.clone(), ou);
            }
        }
        for parent in &parents_to_list {
            for a in orgs.list_accounts_for_parent(parent).await? {
                self.accounts.insert(a.id.clone(), a);
            }
        }
        Ok(())
    }

    /// Takes into this snapshot what a copy of `base` changed (the copy a reconcile wrote its own
    /// changes to), leaving alone what others changed meanwhile.
    pub fn merge_from(&mut self, base: &OrgSnapshot, changed: &OrgSnapshot) {
        fn merge<V: Clone + PartialEq>(
            into: &mut BTreeMap<String, V>,
            base: &BTreeMap<String, V>,
            changed: &BTreeMap<String, V>,
        ) {
            for (k, v) in changed {
                if base.get(k) != Some(v) {
                    into.insert(k.clone(), v.clone());
                }
            }
            for k in base.keys().filter(|k| !changed.contains_key(*k)) {
                into.remove(k);
            }
        }
        merge(&mut self.accounts, &base.accounts, &changed.accounts);
        merge(&mut self.ous, &base.ous, &changed.ous);
        if changed.root != base.root {
            self.root = changed.root.clone();
        }
    }

    /// The AWS partition the Organization lives in (`aws`, `aws-us-gov`, `aws-cn`), from its
    /// ARN: every ARN the operator builds uses it.
    pub fn partition(&self) -> &str {
        self.org
            .as_ref()
            .map_or("aws", |o| crate::aws::partition_of(&o.arn))
    }

    pub fn management_account_id(&self) -> Option<&str> {
        self.org.as_ref().map(|o| o.management_account_id.as_str())
    }

    /// OUs with this name directly under this parent (AWS allows one; more means something is off).
    pub fn ous_named<'a>(
        &'a self,
        parent_id: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a OuInfo> + 'a {
        self.ous
            .values()
            .filter(move |ou| ou.parent_id == parent_id && ou.name == name)
    }

    /// Account with this root email (emails are case-insensitive).
    pub fn account_by_email(&self, email: &str) -> Option<&AccountInfo> {
        self.accounts
            .values()
            .find(|a| a.email.eq_ignore_ascii_case(email))
    }

    pub fn in_flight_for(&self, account_name: &str) -> Option<&CreateAccountStatus> {
        self.in_flight
            .iter()
            .find(|r| r.account_name == account_name)
    }

    /// A request in flight for this account name other than `request_id`: perhaps a twin of it,
    /// sent before an answer was lost.
    pub fn other_in_flight_for(
        &self,
        account_name: &str,
        request_id: &str,
    ) -> Option<&CreateAccountStatus> {
        self.in_flight
            .iter()
            .find(|r| r.account_name == account_name && r.request_id != request_id)
    }

    /// (child OUs, accounts) directly under a parent.
    pub fn children(&self, parent_id: &str) -> (usize, usize) {
        let ous = self
            .ous
            .values()
            .filter(|o| o.parent_id == parent_id)
            .count();
        let accounts = self
            .accounts
            .values()
            .filter(|a| a.parent_id.as_deref() == Some(parent_id))
            .count();
        (ous, accounts)
    }

    /// The parent of an OU or account, as far as the walk saw it.
    pub fn parent_of(&self, id: &str) -> Option<&str> {
        self.ous
            .get(id)
            .map(|o| o.parent_id.as_str())
            .or_else(|| self.accounts.get(id).and_then(|a| a.parent_id.as_deref()))
    }

    /// The name of the root, an OU or an account, for messages.
    pub fn name_of(&self, id: &str) -> Option<&str> {
        if id == self.root_id {
            return Some("Root");
        }
        self.ous
            .get(id)
            .map(|o| o.name.as_str())
            .or_else(|| self.accounts.get(id).map(|a| a.name.as_str()))
    }

    /// Every ACTIVE account in an OU (or the root) and the OUs below it.
    pub fn active_accounts_under(&self, parent: &str) -> Vec<String> {
        let mut ous = vec![parent.to_string()];
        let mut i = 0;
        while i < ous.len() {
            let p = ous[i].clone();
            ous.extend(
                self.ous
                    .values()
                    .filter(|o| o.parent_id == p)
                    .map(|o| o.id.clone()),
            );
            i += 1;
        }
        let ous: std::collections::BTreeSet<String> = ous.into_iter().collect();
        self.accounts
            .values()
            .filter(|a| a.state == "ACTIVE")
            .filter(|a| a.parent_id.as_ref().is_some_and(|p| ous.contains(p)))
            .map(|a| a.id.clone())
            .collect()
    }

    pub fn parent_exists(&self, id: &str) -> bool {
        id == self.root_id || self.ous.contains_key(id)
    }
}

/// Who to wake when a CreateAccount slot frees up (the controller queues the named AwsAccount's
/// reconcile); without one, queued accounts look again at their own pace.
pub type Waker = Arc<dyn Fn(&str) + Send + Sync>;

/// AWS's limit of 5 CreateAccount requests in flight, kept between reads of the Organization: the
/// snapshot's in-flight list, plus the requests sent since it was read, less those seen finished.
/// A slot is free the moment a reconcile sees its request finish, not at the next read.
#[derive(Default)]
pub struct CreateSlots {
    inner: Mutex<Slots>,
    waker: Option<Waker>,
}

#[derive(Default)]
struct Slots {
    /// Decided to send, answer not back yet.
    reserved: usize,
    sent: BTreeSet<String>,
    finished: BTreeSet<String>,
    /// Resources refused a slot, oldest first: woken in that order when one frees up.
    queued: Vec<String>,
}

impl Slots {
    fn in_flight(&self, listed: &[CreateAccountStatus]) -> usize {
        listed
            .iter()
            .filter(|r| {
                !self.finished.contains(&r.request_id) && !self.sent.contains(&r.request_id)
            })
            .count()
            + self.sent.difference(&self.finished).count()
            + self.reserved
    }
}

impl CreateSlots {
    pub fn new(waker: Option<Waker>) -> Self {
        Self {
            inner: Mutex::default(),
            waker,
        }
    }

    /// Takes a slot for `who`'s CreateAccount, or says how many requests are in flight.
    pub fn reserve(&self, listed: &[CreateAccountStatus], who: &str) -> Result<(), usize> {
        let mut s = self.inner.lock().expect("not poisoned");
        let n = s.in_flight(listed);
        if n >= crate::aws::pacing::MAX_CREATE_IN_FLIGHT {
            if !s.queued.iter().any(|q| q == who) {
                s.queued.push(who.to_string());
            }
            return Err(n);
        }
        s.queued.retain(|q| q != who);
        s.reserved += 1;
        Ok(())
    }

    /// The reserved request was sent: AWS answered with its id.
    pub fn sent(&self, request_id: &str) {
        let mut s = self.inner.lock().expect("not poisoned");
        s.reserved = s.reserved.saturating_sub(1);
        s.sent.insert(request_id.to_string());
    }

    /// The reserved request was not sent after all (refused, paced, failed).
    pub fn release(&self) {
        let mut s = self.inner.lock().expect("not poisoned");
        s.reserved = s.reserved.saturating_sub(1);
    }

    /// A request is no longer in flight: its slot goes to the oldest queued resource.
    pub fn finished(&self, listed: &[CreateAccountStatus], request_id: &str) {
        let wake: Vec<String> = {
            let mut s = self.inner.lock().expect("not poisoned");
            if !s.finished.insert(request_id.to_string()) {
                return;
            }
            let free = crate::aws::pacing::MAX_CREATE_IN_FLIGHT.saturating_sub(s.in_flight(listed));
            let n = free.min(s.queued.len());
            s.queued.drain(..n).collect()
        };
        if let Some(w) = &self.waker {
            for name in wake {
                w(&name);
            }
        }
    }

    pub fn in_flight(&self, listed: &[CreateAccountStatus]) -> usize {
        self.inner.lock().expect("not poisoned").in_flight(listed)
    }

    /// The requests sent so far: taken when a read of the Organization begins.
    pub fn sent_ids(&self) -> BTreeSet<String> {
        self.inner.lock().expect("not poisoned").sent.clone()
    }

    /// After a read of the Organization that began once `sent_before` had been sent: its in-flight
    /// list `listed` shows which of those are still running, so they are forgotten here; those
    /// sent since are kept (the list may have been read before them), as are the reservations and
    /// the queue.
    pub fn read_again(&self, listed: &[CreateAccountStatus], sent_before: &BTreeSet<String>) {
        let mut s = self.inner.lock().expect("not poisoned");
        s.sent.retain(|id| !sent_before.contains(id));
        let known: BTreeSet<String> = listed
            .iter()
            .map(|r| r.request_id.clone())
            .chain(s.sent.iter().cloned())
            .collect();
        s.finished.retain(|id| known.contains(id));
    }
}

impl std::fmt::Debug for CreateSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.inner.lock().expect("not poisoned");
        f.debug_struct("CreateSlots")
            .field("reserved", &s.reserved)
            .field("sent", &s.sent)
            .field("finished", &s.finished)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::organizations::CreateState;

    fn listed(id: &str) -> CreateAccountStatus {
        CreateAccountStatus {
            request_id: id.into(),
            state: CreateState::InProgress,
            account_name: format!("for-{id}"),
            account_id: None,
            failure_reason: None,
            completed: None,
        }
    }

    #[test]
    fn a_create_slot_frees_when_its_request_is_seen_finished_and_goes_to_the_oldest_queued() {
        let woken = Arc::new(Mutex::new(Vec::<String>::new()));
        let w = woken.clone();
        let slots = CreateSlots::new(Some(Arc::new(move |n: &str| {
            w.lock().unwrap().push(n.to_string())
        })));
        // Two requests in flight when the Organization was read, three sent since.
        let list = vec![listed("r1"), listed("r2")];
        for (who, id) in [("a", "s1"), ("b", "s2"), ("c", "s3")] {
            slots.reserve(&list, who).unwrap();
            slots.sent(id);
        }
        assert_eq!(slots.in_flight(&list), 5);
        assert_eq!(slots.reserve(&list, "d"), Err(5), "AWS allows 5");
        assert_eq!(slots.reserve(&list, "e"), Err(5));
        assert_eq!(slots.reserve(&list, "d"), Err(5), "queued once");
        // A reservation that was not sent gives its slot back.
        slots.finished(&list, "r1");
        assert_eq!(slots.in_flight(&list), 4);
        assert_eq!(*woken.lock().unwrap(), ["d"], "the oldest waiter is woken");
        slots.reserve(&list, "d").unwrap();
        slots.release();
        assert_eq!(slots.in_flight(&list), 4);
        // A request sent since the read, seen finished twice, frees one slot.
        slots.finished(&list, "s2");
        slots.finished(&list, "s2");
        assert_eq!(slots.in_flight(&list), 3);
        assert_eq!(*woken.lock().unwrap(), ["d", "e"]);
    }

    #[test]
    fn a_new_read_of_the_organization_keeps_the_requests_it_may_not_list() {
        let slots = CreateSlots::new(None);
        for (who, id) in [("a", "s1"), ("b", "s2")] {
            slots.reserve(&[], who).unwrap();
            slots.sent(id);
        }
        // The read begins; s3 is sent while it runs, after its list of requests in flight.
        let before = slots.sent_ids();
        slots.reserve(&[], "c").unwrap();
        slots.sent("s3");
        // s4 is reserved, not sent yet. The read lists s1 in flight (s2 finished meanwhile).
        slots.reserve(&[], "d").unwrap();
        let listed = vec![listed("s1")];
        slots.read_again(&listed, &before);
        assert_eq!(
            slots.in_flight(&listed),
            3,
            "s1 (listed), s3 (sent since), d's reservation"
        );
        // s1 seen finished: forgotten at the next read, which no longer lists it.
        slots.finished(&listed, "s1");
        assert_eq!(slots.in_flight(&listed), 2);
        let before = slots.sent_ids();
        slots.read_again(&[], &before);
        assert_eq!(slots.in_flight(&[]), 1, "the reservation only");
        assert!(slots.sent_ids().is_empty());
    }

    fn account(id: &str, parent: &str) -> AccountInfo {
        AccountInfo {
            id: id.into(),
            arn: String::new(),
            name: id.into(),
            email: format!("{id}@example.com"),
            state: "ACTIVE".into(),
            parent_id: Some(parent.into()),
            joined: None,
            joined_method: None,
        }
    }

    #[test]
    fn a_reconciles_own_changes_merge_without_undoing_anothers() {
        let mut base = OrgSnapshot::default();
        for id in ["a1", "a2", "a3"] {
            base.accounts.insert(id.into(), account(id, "r-1"));
        }
        // Reconcile 1 moved a1 and saw a new account a4; reconcile 2 moved a2; a3 is closed
        // out of the snapshot by reconcile 2.
        let mut one = base.clone();
        one.accounts.insert("a1".into(), account("a1", "ou-1"));
        one.accounts.insert("a4".into(), account("a4", "r-1"));
        let mut two = base.clone();
        two.accounts.insert("a2".into(), account("a2", "ou-2"));
        two.accounts.remove("a3");
        two.root
            .policy_types
            .insert("SERVICE_CONTROL_POLICY".into(), "ENABLED".into());
        let mut pass = base.clone();
        pass.merge_from(&base, &one);
        pass.merge_from(&base, &two);
        assert_eq!(pass.parent_of("a1"), Some("ou-1"));
        assert_eq!(
            pass.parent_of("a2"),
            Some("ou-2"),
            "not undone by reconcile 1's copy"
        );
        assert!(pass.accounts.contains_key("a4"));
        assert!(!pass.accounts.contains_key("a3"));
        assert_eq!(pass.root, two.root);
    }
}
