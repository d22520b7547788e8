//! `orders`, the same for vendors and distributors: a page of what *is*.

use socketioxide::adapter::Adapter;

use super::{Call, orders_ack};
use crate::ops;
use crate::protocol::OrdersRequest;

/// `orders { status?, limit?, before? }`: a page of this identity's orders,
/// most recently updated first, and the cursor of the next page.
pub(crate) async fn on_orders<A: Adapter>(call: Call<A>) {
    let result = async {
        let party = call.recipient()?;
        let request = call.request(|payload| OrdersRequest::parse(payload, &party))?;
        let page = ops::list_orders(call.hub(), &party, &request).await?;
        Ok(orders_ack(&party, &request, &page))
    }
    .await;
    call.answer(result);
}
